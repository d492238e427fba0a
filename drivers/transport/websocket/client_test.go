package websocket_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/websocket"
	"github.com/offsync/offsync/server"
)

// replica is an engine over a SQLite file and a websocket client.
type replica struct {
	eng    *core.Engine
	docs   *core.DocWriter
	client *websocket.Client
}

func newReplica(t *testing.T, c *websocket.Client) *replica {
	t.Helper()
	st := newStore(t)
	docs := core.Documents(todo)
	eng, err := core.NewEngine(context.Background(), st, c, &core.Options{Tables: []core.Table{docs}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &replica{eng: eng, docs: core.DocsFor(eng, docs), client: c}
}

func waitEvent(t *testing.T, sub *core.Subscription, match func(core.Event) bool) {
	t.Helper()
	for {
		select {
		case ev := <-sub.C:
			if match(ev) {
				return
			}
		case <-t.Context().Done():
			t.Fatal("no matching event before the test's end")
		}
	}
}

// listenAt serves h on addr ("127.0.0.1:0" for any port).
func listenAt(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the old listener's port may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	return srv
}

// restartable is the websocket half over one authority, served on one
// address that survives restarts.
type restartable struct {
	t    *testing.T
	svc  *server.Service
	lim  server.Limits
	addr string
	half server.TransportServer
	srv  *httptest.Server
}

func (r *restartable) start() {
	r.t.Helper()
	half, err := server.OpenServer(context.Background(), "websocket", r.svc, server.TransportConfig{Limits: r.lim})
	if err != nil {
		r.t.Fatal(err)
	}
	mux, err := server.NewHTTPMux(map[string]http.Handler{"/ws": half.(server.HTTPTransport)})
	if err != nil {
		r.t.Fatal(err)
	}
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	r.half, r.srv = half, listenAt(r.t, addr, mux)
	r.addr = r.srv.Listener.Addr().String()
}

func (r *restartable) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = r.half.Shutdown(ctx)
	r.srv.CloseClientConnections()
	r.srv.Close()
}

func (r *restartable) url() string { return "ws://" + r.addr + "/ws" }

// Realtime end to end: B runs Run(Realtime()) with no interval and applies
// A's write through the socket; after the server restarts on the same
// address, B reconnects, pulls after the gap, and still receives later
// writes.
func TestRealtimeEndToEndWithRestart(t *testing.T) {
	svc := newAuthority(t, nil)
	rs := &restartable{t: t, svc: svc, lim: server.Limits{Heartbeat: time.Second}}
	rs.start()
	t.Cleanup(rs.stop)
	a := newReplica(t, newClient(t, rs.url(), "", nil))
	b := newReplica(t, newClient(t, rs.url(), "", nil))

	sub := b.eng.Subscribe(1024)
	defer sub.Close()
	runCtx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- b.eng.Run(runCtx, core.Realtime()) }()
	defer func() {
		stop()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	}()
	waitEvent(t, sub, func(ev core.Event) bool { _, ok := ev.(core.SyncCompleted); return ok })

	write := func(id, text string) {
		t.Helper()
		if err := a.docs.Put(t.Context(), id, map[string]any{"text": text}); err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := a.eng.Sync(t.Context()); err == nil {
				return
			} else if !core.Retryable(err) {
				t.Fatal(err)
			}
		}
	}
	seen := func(id, text string) {
		t.Helper()
		waitEvent(t, sub, func(ev core.Event) bool {
			p, ok := ev.(core.PagePulled)
			if !ok || p.Kind != todo {
				return false
			}
			rec, err := b.eng.Get(t.Context(), todo, id)
			if err != nil {
				return false
			}
			var m map[string]any
			return json.Unmarshal(rec.Data, &m) == nil && m["text"] == text
		})
	}
	write("n1", "before")
	seen("n1", "before")

	rs.stop()
	// Written while B's socket is down: only the pull after the gap brings it.
	if _, err := svc.Push(t.Context(), []core.Op{{OpID: "down-1", Kind: todo, ID: "n2", Type: core.OpUpsert,
		Payload: json.RawMessage(`{"text":"while down"}`)}}); err != nil {
		t.Fatal(err)
	}
	rs.start()
	seen("n2", "while down")
	write("n3", "after")
	seen("n3", "after")
}

// rotating is a token source whose refresh returns the next token.
type rotating struct {
	mu        sync.Mutex
	toks      []string
	refreshes int
}

func (r *rotating) source(_ context.Context, refresh bool) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if refresh {
		r.refreshes++
		if len(r.toks) > 1 {
			r.toks = r.toks[1:]
		}
	}
	return r.toks[0], nil
}

// After the server closes the socket with 4001 (an expired token), the
// client asks its token source again with refresh=true, reconnects and the
// call succeeds; a refused refreshed token is core.ErrUnauthorized.
func TestClientRefreshesTokenOn4001(t *testing.T) {
	tk := newTokens("t1")
	svc := newAuthority(t, &server.Options{Authenticate: tk.authenticate})
	s := serve(t, svc, server.Limits{})
	src := &rotating{toks: []string{"t1", "t2", "t3"}}
	c := websocket.NewClient(s.url, &websocket.Options{Token: src.source})
	defer c.Close()
	if _, err := c.Pull(t.Context(), core.PullRequest{Kind: todo}); err != nil {
		t.Fatal(err)
	}
	tk.set("t1", false)
	tk.set("t2", true)
	if _, err := c.Pull(t.Context(), core.PullRequest{Kind: todo}); err != nil {
		t.Fatalf("pull after the token expired: %v", err)
	}
	if src.refreshes != 1 {
		t.Fatalf("token source refreshed %d times, want 1", src.refreshes)
	}
	tk.set("t2", false)
	_, err := c.Pull(t.Context(), core.PullRequest{Kind: todo})
	if !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("pull with every token refused: %v, want core.ErrUnauthorized", err)
	}
	if c := core.Categorize(err); c != core.CategoryAuth {
		t.Fatalf("%v is in category %s, want auth", err, c)
	}
}

// Reauth replaces the token on the live socket without reconnecting.
func TestClientReauthOnLiveSocket(t *testing.T) {
	tk := newTokens("t1", "t2")
	svc := newAuthority(t, &server.Options{Authenticate: tk.authenticate})
	s := serve(t, svc, server.Limits{})
	src := &rotating{toks: []string{"t1", "t2"}}
	conns := faults.NewConns(nil)
	c := websocket.NewClient(s.url, &websocket.Options{Token: src.source, WrapConn: conns.Wrap})
	defer c.Close()
	if _, err := c.Pull(t.Context(), core.PullRequest{Kind: todo}); err != nil {
		t.Fatal(err)
	}
	if err := c.Reauth(t.Context()); err != nil {
		t.Fatal(err)
	}
	tk.set("t1", false)
	if _, err := c.Pull(t.Context(), core.PullRequest{Kind: todo}); err != nil {
		t.Fatalf("pull after Reauth: %v", err)
	}
	if n := conns.Stats().Wrapped; n != 1 {
		t.Fatalf("%d connections, want the one: Reauth must not reconnect", n)
	}
}

// A half-open connection (nothing arrives, nothing is closed) is detected
// by the heartbeat: the client cuts it, reconnects and reports a gap.
func TestClientDetectsHalfOpenConnection(t *testing.T) {
	svc := newAuthority(t, nil)
	s := serve(t, svc, server.Limits{Heartbeat: 50 * time.Millisecond})
	conns := faults.NewConns(nil)
	c := newClient(t, s.url, "", conns.Wrap)
	ch, err := c.Subscribe(t.Context(), []string{todo})
	if err != nil {
		t.Fatal(err)
	}
	if n := conns.Stall(); n != 1 {
		t.Fatalf("stalled %d connections, want 1", n)
	}
	for n := range ch {
		if n.Gap {
			break
		}
	}
	if w := conns.Stats().Wrapped; w < 2 {
		t.Fatalf("%d connections dialed, want a new one after the stall", w)
	}
	if _, err := svc.Push(t.Context(), []core.Op{{OpID: "o", Kind: todo, ID: "x", Type: core.OpUpsert, Payload: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	for n := range ch {
		if n.Kind == todo && n.ID == "x" {
			return
		}
	}
	t.Fatal("the notice channel closed")
}

// gatedPulls holds the pulls of one kind until released.
type gatedPulls struct {
	*server.Service
	kind    string
	entered chan struct{}
	release chan struct{}
}

func (g *gatedPulls) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	if req.Kind == g.kind {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Service.Pull(ctx, req)
}

// Many requests share one socket, answered out of order and matched by id;
// a request whose context ends returns at once without harming the others.
func TestClientMultiplexes(t *testing.T) {
	svc := newAuthority(t, &server.Options{Tables: []core.Table{core.Documents(todo), core.Documents("slow")}})
	g := &gatedPulls{Service: svc, kind: "slow", entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := serve(t, g, server.Limits{})
	conns := faults.NewConns(nil)
	c := newClient(t, s.url, "", conns.Wrap)

	slow := make(chan error, 1)
	go func() {
		_, err := c.Pull(t.Context(), core.PullRequest{Kind: "slow"})
		slow <- err
	}()
	<-g.entered
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := core.Op{OpID: fmt.Sprintf("op%d", i), Kind: todo, ID: fmt.Sprintf("r%d", i), Type: core.OpUpsert,
				Payload: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
			res, err := c.Push(t.Context(), []core.Op{op})
			if err != nil || len(res) != 1 || res[0].OpID != op.OpID || res[0].Status != core.StatusApplied {
				failed.Add(1)
				return
			}
			rec, err := c.Get(t.Context(), todo, op.ID)
			if err != nil || string(rec.Data) != string(op.Payload) {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of 20 concurrent push+get pairs got a wrong answer while a pull was held", n)
	}
	// A held request honours its context.
	ctx, cancel := context.WithCancel(t.Context())
	held := make(chan error, 1)
	go func() {
		_, err := c.Pull(ctx, core.PullRequest{Kind: "slow"})
		held <- err
	}()
	cancel()
	if err := <-held; !errors.Is(err, core.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled pull returned %v, want core.ErrUnavailable and context.Canceled", err)
	}
	close(g.release)
	if err := <-slow; err != nil {
		t.Fatalf("the held pull: %v", err)
	}
	if n := conns.Stats().Wrapped; n != 1 {
		t.Fatalf("%d connections, want every call on one socket", n)
	}
}

// Errors are classified as the REST client's: the socket unreachable is
// retry-later, a refusal names its sentinel, a closed client is ErrClosed.
func TestClientErrors(t *testing.T) {
	svc := newAuthority(t, nil)
	s := serve(t, svc, server.Limits{MaxMessage: 4096})
	c := newClient(t, s.url, "", nil)
	ctx := t.Context()
	if _, err := c.Pull(ctx, core.PullRequest{Kind: "nope"}); !errors.Is(err, core.ErrUnknownKind) {
		t.Errorf("pull of an unknown kind: %v", err)
	}
	if _, err := c.Pull(ctx, core.PullRequest{Kind: todo, PageToken: "forged"}); !errors.Is(err, core.ErrBadCursor) {
		t.Errorf("pull with a forged token: %v", err)
	}
	if _, err := c.Get(ctx, todo, "none"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("get of a missing record: %v", err)
	}
	big := core.Op{OpID: "big", Kind: todo, ID: "b", Type: core.OpUpsert,
		Payload: json.RawMessage(`{"b":"` + strings.Repeat("x", 5000) + `"}`)}
	small := core.Op{OpID: "small", Kind: todo, ID: "s", Type: core.OpUpsert, Payload: json.RawMessage(`{"a":1}`)}
	res, err := c.Push(ctx, []core.Op{big, small})
	if err != nil || len(res) != 2 || res[0].Status != core.StatusRejected || !res[0].Permanent || res[1].Status != core.StatusApplied {
		t.Errorf("push of an op over maxMessage beside a small one: %+v, %v; want the big one rejected for good and the other applied", res, err)
	}
	bad := core.Op{OpID: "bad", Kind: todo, ID: "c", Type: core.OpUpsert, Payload: json.RawMessage(`[1]`)}
	if res, err := c.Push(ctx, []core.Op{bad}); err != nil || res[0].Status != core.StatusRejected || !res[0].Permanent {
		t.Errorf("push of a payload that is not an object: %+v, %v", res, err)
	}

	dead := newClient(t, "ws://127.0.0.1:1/ws", "", nil)
	if _, err := dead.Pull(ctx, core.PullRequest{Kind: todo}); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("pull with no server: %v, want core.ErrUnavailable", err)
	}
	c.Close()
	if _, err := c.Pull(ctx, core.PullRequest{Kind: todo}); !errors.Is(err, core.ErrClosed) {
		t.Errorf("pull after Close: %v, want core.ErrClosed", err)
	}
	if _, err := core.OpenTransport(ctx, "websocket", "http://127.0.0.1/ws", nil); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("opening an http URL: %v, want core.ErrInvalid", err)
	}
	if _, err := core.OpenTransport(ctx, "websocket", s.url, map[string]any{"tok": "x"}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("opening with an unknown option: %v, want core.ErrInvalid", err)
	}
	tr, err := core.OpenTransport(ctx, "websocket", s.url, map[string]any{"token": "x", "timeout": "5s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Pull(ctx, core.PullRequest{Kind: todo}); err != nil {
		t.Errorf("pull through the registered opener: %v", err)
	}
	tr.(interface{ Close() error }).Close()
}
