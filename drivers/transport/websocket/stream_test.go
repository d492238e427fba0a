package websocket_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/websocket"
	"github.com/offsync/offsync/server"
)

// The client is a page streamer.
var _ core.PageStreamer = (*websocket.Client)(nil)

// tenants is an authority whose callers are tenants: the token is the
// tenant, and each sees only its own rows of todo.
func tenants(t *testing.T) *server.Service {
	t.Helper()
	return newAuthority(t, &server.Options{
		Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
			if tok == "" {
				return core.Principal{}, fmt.Errorf("no token: %w", core.ErrUnauthorized)
			}
			return core.Principal{ID: tok, Attrs: map[string]string{"tenant": tok}}, nil
		},
		Scope: func(_ context.Context, p core.Principal, kind string) (*core.Filter, error) {
			return &core.Filter{Field: "tenant", Values: []string{p.Attrs["tenant"]}}, nil
		},
	})
}

// seed writes n todos as tenant (a tombstone every third when tombstones)
// and returns the live and deleted counts.
func seed(t *testing.T, svc *server.Service, tenant string, n int, tombstones bool) (live, deleted int) {
	t.Helper()
	ctx := as(t, tenant)
	var ops []core.Op
	for i := range n {
		ops = append(ops, core.Op{OpID: fmt.Sprintf("%s-u%d", tenant, i), Kind: todo, ID: fmt.Sprintf("%s-%03d", tenant, i),
			Type: core.OpUpsert, Payload: json.RawMessage(fmt.Sprintf(`{"title":"t%d","n":%d}`, i, i))})
	}
	res, err := svc.Push(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != core.StatusApplied {
			t.Fatalf("seed: %+v", r)
		}
	}
	if !tombstones {
		return n, 0
	}
	ops = ops[:0]
	for i := 0; i < n; i += 3 {
		ops = append(ops, core.Op{OpID: fmt.Sprintf("%s-d%d", tenant, i), Kind: todo, ID: fmt.Sprintf("%s-%03d", tenant, i),
			Type: core.OpDelete, Force: true})
	}
	if res, err = svc.Push(ctx, ops); err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != core.StatusApplied {
			t.Fatalf("seed delete: %+v", r)
		}
	}
	return n - len(ops), len(ops)
}

// as is the context of a call made in-process by tenant.
func as(t *testing.T, tenant string) context.Context {
	return core.WithPrincipal(t.Context(), core.Principal{ID: tenant, Attrs: map[string]string{"tenant": tenant}})
}

// walkByPull is the walk of req made of Pull calls, page after page.
func walkByPull(ctx context.Context, t *testing.T, tr core.Transport, req core.PullRequest) []core.Page {
	t.Helper()
	var pages []core.Page
	for {
		p, err := tr.Pull(ctx, req)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		pages = append(pages, p)
		if p.NextPageToken == "" || len(p.Records) == 0 {
			return pages
		}
		last := p.Records[len(p.Records)-1]
		req.After, req.PageToken = core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}, p.NextPageToken
	}
}

// walkByStream is the walk of req as PullPages yields it.
func walkByStream(t *testing.T, s core.PageStreamer, req core.PullRequest) []core.Page {
	t.Helper()
	var pages []core.Page
	if err := s.PullPages(t.Context(), req, func(p core.Page) error { pages = append(pages, p); return nil }); err != nil {
		t.Fatalf("PullPages: %v", err)
	}
	return pages
}

// samePages fails unless the two walks are page for page the same: the
// records (instants compared as instants), the tokens and remaining.
func samePages(t *testing.T, got, want []core.Page) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d pages, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.NextPageToken != w.NextPageToken || g.Remaining != w.Remaining || len(g.Records) != len(w.Records) {
			t.Fatalf("page %d: token %q remaining %d with %d records, want %q %d %d", i,
				g.NextPageToken, g.Remaining, len(g.Records), w.NextPageToken, w.Remaining, len(w.Records))
		}
		for j := range w.Records {
			a, b := g.Records[j], w.Records[j]
			if a.Kind != b.Kind || a.ID != b.ID || !a.UpdatedAt.Equal(b.UpdatedAt) || !a.DeletedAt.Equal(b.DeletedAt) ||
				!a.EditedAt.Equal(b.EditedAt) || string(a.Data) != string(b.Data) {
				t.Fatalf("page %d record %d: %+v, want %+v", i, j, a, b)
			}
		}
	}
}

// A streamed walk is the page-by-page walk: several pages, tombstones, and
// only the caller's rows (scope), from the start and from a cursor.
func TestStreamEqualsPull(t *testing.T) {
	svc := tenants(t)
	live, deleted := seed(t, svc, "alice", 23, true)
	seed(t, svc, "bob", 9, false)
	s := serve(t, svc, server.Limits{})
	c := newClient(t, s.url, "alice", nil)

	req := core.PullRequest{Kind: todo, Limit: 4}
	streamed := walkByStream(t, c, req)
	samePages(t, streamed, walkByPull(t.Context(), t, c, req))
	samePages(t, streamed, walkByPull(as(t, "alice"), t, svc, req)) // the authority's own answers, not the twin's
	if len(streamed) < 6 {
		t.Fatalf("%d pages: the walk must span several", len(streamed))
	}
	var tomb, alive int
	for _, p := range streamed {
		for _, r := range p.Records {
			if r.ID[:5] != "alice" {
				t.Fatalf("record %s of another tenant in alice's walk", r.ID)
			}
			if r.DeletedAt.IsZero() {
				alive++
			} else {
				tomb++
			}
		}
	}
	if alive != live || tomb != deleted {
		t.Fatalf("%d live and %d tombstones, want %d and %d", alive, tomb, live, deleted)
	}

	mid := streamed[2].Records[len(streamed[2].Records)-1]
	from := core.PullRequest{Kind: todo, Limit: 5, After: core.Cursor{UpdatedAt: mid.UpdatedAt, ID: mid.ID}}
	samePages(t, walkByStream(t, c, from), walkByPull(as(t, "alice"), t, svc, from))

	bob := newClient(t, s.url, "bob", nil)
	all := core.PullRequest{Kind: todo, Limit: 1000}
	samePages(t, walkByStream(t, bob, all), walkByPull(t.Context(), t, bob, all))
}

// Bad stream frames each get their exact answer; the socket survives and
// nothing is written.
func TestStreamBadFrames(t *testing.T) {
	svc := newAuthority(t, nil)
	seed(t, svc, "", 3, false)
	s := serve(t, svc, server.Limits{})
	if r := dialRaw(t, s.url, ""); r.hello["maxWindow"] != float64(16) {
		t.Fatalf("hello %v does not advertise maxWindow 16", r.hello)
	}
	cases := []struct {
		name   string
		frame  string
		id     float64 // 0: the error has no id
		status float64
		code   string
	}{
		{"unknown kind", `{"t":"pullPages","id":1,"kind":"nope","window":2}`, 1, 404, "unknown_kind"},
		{"no kind", `{"t":"pullPages","id":1,"window":2}`, 1, 400, "bad_request"},
		{"forged page token", `{"t":"pullPages","id":1,"kind":"todo","pageToken":"forged","window":2}`, 1, 400, "bad_cursor"},
		{"bad cursor time", `{"t":"pullPages","id":1,"kind":"todo","after":{"updated_at":"yesterday","id":"a"},"window":2}`, 1, 400, "bad_request"},
		{"limit 0", `{"t":"pullPages","id":1,"kind":"todo","limit":0,"window":2}`, 1, 400, "bad_request"},
		{"no window", `{"t":"pullPages","id":1,"kind":"todo"}`, 1, 400, "bad_request"},
		{"window 0", `{"t":"pullPages","id":1,"kind":"todo","window":0}`, 1, 400, "bad_request"},
		{"negative window", `{"t":"pullPages","id":1,"kind":"todo","window":-3}`, 1, 400, "bad_request"},
		{"window over maxWindow", `{"t":"pullPages","id":1,"kind":"todo","window":17}`, 1, 400, "bad_request"},
		{"window not a number", `{"t":"pullPages","id":1,"kind":"todo","window":"2"}`, 1, 400, "bad_request"},
		{"credit of a stream never started", `{"t":"credit","stream":9,"n":1}`, 0, 400, "bad_request"},
		{"credit without a stream", `{"t":"credit","n":1}`, 0, 400, "bad_request"},
		{"credit without n", `{"t":"credit","stream":1}`, 0, 400, "bad_request"},
		{"credit of 0", `{"t":"credit","stream":1,"n":0}`, 0, 400, "bad_request"},
		{"cancel of an unknown id", `{"t":"cancel","stream":42}`, 0, 400, "bad_request"},
		{"cancel without a stream", `{"t":"cancel"}`, 0, 400, "bad_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := dialRaw(t, s.url, "")
			r.send(c.frame)
			wantError(t, r.read(), c.id, c.status, c.code)
			r.alive(100)
		})
	}
	if n := countRecords(t, svc); n != 3 {
		t.Fatalf("%d records, want the 3 seeded", n)
	}
}

// readPage reads the next frame, which must be a page of stream id, and
// returns its item ids and whether it is the last.
func (r *raw) readPage(id int) (ids []string, last bool) {
	r.t.Helper()
	m := r.read()
	if m["t"] != "page" || m["id"] != float64(id) {
		r.t.Fatalf("frame %v, want a page of stream %d", m, id)
	}
	for _, it := range m["items"].([]any) {
		ids = append(ids, it.(map[string]any)["id"].(string))
	}
	return ids, m["nextPageToken"] == nil
}

// A credit or cancel that crosses its stream's end is ignored; a credit
// over the window ends the stream with an error of its id; a request that
// repeats a running stream's id ends that stream with its error.
func TestStreamCreditAndIDs(t *testing.T) {
	svc := newAuthority(t, nil)
	seed(t, svc, "", 6, false)
	s := serve(t, svc, server.Limits{})

	t.Run("credit and cancel after the last page", func(t *testing.T) {
		r := dialRaw(t, s.url, "")
		r.send(`{"t":"pullPages","id":1,"kind":"todo","limit":100,"window":1}`)
		if ids, last := r.readPage(1); len(ids) != 6 || !last {
			t.Fatalf("page %v (last %v), want the 6 rows in one last page", ids, last)
		}
		r.send(`{"t":"credit","stream":1,"n":1}`)
		r.send(`{"t":"cancel","stream":1}`)
		r.alive(2) // the next frame is the pong: both were ignored
	})
	t.Run("credit over the window", func(t *testing.T) {
		r := dialRaw(t, s.url, "")
		r.send(`{"t":"pullPages","id":1,"kind":"todo","limit":1,"window":2}`)
		r.readPage(1)
		r.readPage(1) // the window is spent: the server holds 0 credits
		r.send(`{"t":"credit","stream":1,"n":3}`)
		wantError(t, r.read(), 1, 400, "bad_request")
		r.send(`{"t":"credit","stream":1,"n":1}`) // the stream is over
		r.alive(2)
	})
	t.Run("a repeated id ends the running stream", func(t *testing.T) {
		r := dialRaw(t, s.url, "")
		r.send(`{"t":"pullPages","id":5,"kind":"todo","limit":1,"window":1}`)
		r.readPage(5)
		r.send(`{"t":"pullPages","id":5,"kind":"todo","limit":1,"window":1}`)
		wantError(t, r.read(), 5, 400, "bad_request")
		r.send(`{"t":"credit","stream":5,"n":1}`)
		r.alive(6) // no page of stream 5 after its error
	})
}

// observed is an authority whose walks are watched: each page handed to
// the server half (entered), each one the half has taken (taken), and the
// end of every walk (ended).
type observed struct {
	*server.Service
	entered chan int
	taken   atomic.Int64
	ended   chan error
}

func observe(svc *server.Service) *observed {
	return &observed{Service: svc, entered: make(chan int, 1000), ended: make(chan error, 10)}
}

func (o *observed) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	n := 0
	err := o.Service.PullPages(ctx, req, func(p core.Page) error {
		n++
		o.entered <- n
		err := yield(p)
		if err == nil {
			o.taken.Add(1)
		}
		return err
	})
	o.ended <- err
	return err
}

// waitEntered waits until the half has been handed page n of a walk.
func (o *observed) waitEntered(t *testing.T, n int) {
	t.Helper()
	for got := range o.entered {
		if got == n {
			return
		}
	}
}

// A client that grants nothing gets exactly its window of pages: the half
// holds the next page (the walk waits) while the socket stays up and
// answers other requests; a credit releases one more page; a cancel ends
// the stream with its ok, and its place among maxInFlight is free again.
func TestStreamWithoutCredit(t *testing.T) {
	o := observe(newAuthority(t, nil))
	seed(t, o.Service, "", 10, false)
	s := serve(t, o, server.Limits{MaxInFlight: 2})
	r := dialRaw(t, s.url, "")
	r.send(`{"t":"pullPages","id":1,"kind":"todo","limit":1,"window":3}`)
	for range 3 {
		if _, last := r.readPage(1); last {
			t.Fatal("a last page among the first 3 of 10")
		}
	}
	// The walk has read page 4 and handed it to the half, which must wait
	// for a credit: the next frames are the answers to a push and a ping.
	o.waitEntered(t, 4)
	r.send(fmt.Sprintf(pushOne, 2, 2, 2))
	if m := r.read(); m["t"] != "results" || m["id"] != float64(2) {
		t.Fatalf("push answered %v (a page sent without credit?)", m)
	}
	r.alive(3)
	if n := o.taken.Load(); n != 3 {
		t.Fatalf("the half took %d pages without credit beyond the window of 3", n)
	}
	// The stream counts in flight until it ends: a second stream fits
	// (maxInFlight is 2), a third request does not.
	r.send(`{"t":"pullPages","id":4,"kind":"todo","limit":1,"window":1}`)
	r.readPage(4)
	r.send(`{"t":"pull","id":5,"kind":"todo"}`)
	wantError(t, r.read(), 5, 429, "rate_limited")

	r.send(`{"t":"credit","stream":1,"n":1}`)
	if ids, _ := r.readPage(1); len(ids) != 1 || ids[0] != "-003" {
		t.Fatalf("page after the credit: %v, want the 4th row", ids)
	}
	r.send(`{"t":"cancel","stream":1}`)
	if m := r.read(); m["t"] != "ok" || m["id"] != float64(1) {
		t.Fatalf("cancel answered %v, want ok of stream 1", m)
	}
	if err := <-o.ended; err == nil {
		t.Fatal("the cancelled walk of 10 pages ended without an error")
	}
	r.send(`{"t":"pull","id":6,"kind":"todo"}`) // the cancelled stream's place is free
	if m := r.read(); m["t"] != "page" || m["id"] != float64(6) {
		t.Fatalf("pull after the cancel answered %v", m)
	}
	r.send(`{"t":"cancel","stream":4}`)
	if m := r.read(); m["t"] != "ok" || m["id"] != float64(4) {
		t.Fatalf("cancel answered %v, want ok of stream 4", m)
	}
	r.alive(7)
}

// A client whose context ends mid-stream returns promptly with the
// context's error and cancels the stream: the server's walk ends. A yield
// that fails ends the stream with its error.
func TestStreamClientStops(t *testing.T) {
	o := observe(newAuthority(t, nil))
	seed(t, o.Service, "", 20, false)
	s := serve(t, o, server.Limits{})
	c := newClient(t, s.url, "", nil)

	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err := c.PullPages(ctx, core.PullRequest{Kind: todo, Limit: 1}, func(core.Page) error {
		if n++; n == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 2 {
		t.Fatalf("PullPages after cancel: %v after %d pages", err, n)
	}
	if err := <-o.ended; err == nil {
		t.Fatal("the server's walk of 20 pages ended without an error after 2 were taken")
	}

	stop := errors.New("enough")
	n = 0
	err = c.PullPages(t.Context(), core.PullRequest{Kind: todo, Limit: 1}, func(core.Page) error {
		if n++; n == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 3 {
		t.Fatalf("PullPages with a failing yield: %v after %d pages", err, n)
	}
	if err := <-o.ended; err == nil {
		t.Fatal("the server's walk of 20 pages ended without an error after 3 were taken")
	}
	// The socket serves on.
	samePages(t, walkByStream(t, c, core.PullRequest{Kind: todo, Limit: 7}), walkByPull(as(t, ""), t, o.Service, core.PullRequest{Kind: todo, Limit: 7}))
}

// cutter remembers the connections a client dials, to cut them.
type cutter struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (k *cutter) wrap(c net.Conn) net.Conn {
	k.mu.Lock()
	k.conns = append(k.conns, c)
	k.mu.Unlock()
	return c
}

func (k *cutter) cut() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range k.conns {
		c.Close()
	}
}

// A socket lost mid-stream fails the walk with core.ErrUnavailable after
// the pages that came before; the next walk reconnects.
func TestStreamSocketDropped(t *testing.T) {
	o := observe(newAuthority(t, nil))
	seed(t, o.Service, "", 30, false)
	s := serve(t, o, server.Limits{})
	k := &cutter{}
	c := newClient(t, s.url, "", k.wrap)
	n := 0
	err := c.PullPages(t.Context(), core.PullRequest{Kind: todo, Limit: 1}, func(core.Page) error {
		if n++; n == 2 {
			k.cut()
		}
		return nil
	})
	if !errors.Is(err, core.ErrUnavailable) || n < 2 || n >= 30 {
		t.Fatalf("PullPages over a cut socket: %v after %d pages", err, n)
	}
	if err := <-o.ended; err == nil {
		t.Fatal("the server's walk ended without an error when its socket was cut")
	}
	samePages(t, walkByStream(t, c, core.PullRequest{Kind: todo, Limit: 8}), walkByPull(as(t, ""), t, o.Service, core.PullRequest{Kind: todo, Limit: 8}))
}

// expiring is an authority whose tokens "short-N" expire N milliseconds
// after they are first seen; any other token never expires.
func expiring(t *testing.T) *server.Service {
	var mu sync.Mutex
	first := map[string]time.Time{}
	return newAuthority(t, &server.Options{Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
		var ms int
		if _, err := fmt.Sscanf(tok, "short-%d", &ms); err != nil {
			return core.Principal{ID: tok}, nil
		}
		mu.Lock()
		at, ok := first[tok]
		if !ok {
			at = time.Now()
			first[tok] = at
		}
		mu.Unlock()
		exp := at.Add(time.Duration(ms) * time.Millisecond).UnixMilli()
		return core.Principal{ID: tok, Attrs: map[string]string{server.ExpiryAttr: strconv.FormatInt(exp, 10)}}, nil
	}})
}

// A token that expires while its stream waits for credit closes the socket
// with 4001; when an auth frame replaced it, the stream alone ends, with
// 401 and its id.
func TestStreamTokenExpiry(t *testing.T) {
	svc := expiring(t)
	seed(t, svc, "", 5, false)
	s := serve(t, svc, server.Limits{})

	r := dialRaw(t, s.url, "short-300")
	r.send(`{"t":"pullPages","id":1,"kind":"todo","limit":1,"window":1}`)
	r.readPage(1)
	if code := r.closed(); code != websocket.CloseUnauthorized {
		t.Fatalf("the stream's token expired: closed with %d, want 4001", code)
	}

	r = dialRaw(t, s.url, "short-1500")
	r.send(`{"t":"pullPages","id":1,"kind":"todo","limit":1,"window":1}`)
	r.readPage(1)
	r.send(`{"t":"auth","id":2,"token":"long"}`)
	if m := r.read(); m["t"] != "ok" || m["id"] != float64(2) {
		t.Fatalf("auth answered %v", m)
	}
	wantError(t, r.read(), 1, 401, "unauthorized")
	r.alive(3)
}

// noStreams is the authority without its PageStreamer power: an older
// server, whose half does not serve pullPages.
type noStreams struct{ svc *server.Service }

func (n noStreams) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	return n.svc.Pull(ctx, req)
}
func (n noStreams) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	return n.svc.Push(ctx, ops)
}
func (n noStreams) Get(ctx context.Context, kind, id string) (core.Record, error) {
	return n.svc.Get(ctx, kind, id)
}
func (n noStreams) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	return n.svc.Subscribe(ctx, kinds)
}
func (n noStreams) BatchLimits(ctx context.Context) (core.BatchLimits, error) {
	return n.svc.BatchLimits(ctx)
}
func (n noStreams) Authenticate(ctx context.Context, tok string) (core.Principal, error) {
	return n.svc.Authenticate(ctx, tok)
}

// Against a server without streams (no maxWindow in its hello, pullPages
// answered 501), the client's PullPages pulls page by page: the same walk.
func TestStreamFallback(t *testing.T) {
	svc := tenants(t)
	seed(t, svc, "alice", 17, true)
	seed(t, svc, "bob", 4, false)
	s := serve(t, noStreams{svc}, server.Limits{})
	r := dialRaw(t, s.url, "alice")
	if _, ok := r.hello["maxWindow"]; ok {
		t.Fatalf("hello %v advertises streams", r.hello)
	}
	r.send(`{"t":"pullPages","id":1,"kind":"todo","window":2}`)
	wantError(t, r.read(), 1, 501, "not_implemented")
	r.alive(2)

	c := newClient(t, s.url, "alice", nil)
	req := core.PullRequest{Kind: todo, Limit: 3}
	got := walkByStream(t, c, req)
	samePages(t, got, walkByPull(as(t, "alice"), t, svc, req))
	if len(got) < 6 {
		t.Fatalf("%d pages, want several", len(got))
	}
}

// The engine syncs over streams, and a client with a token source asks for
// a fresh token after a 4001 before the first page.
func TestStreamTokenRefresh(t *testing.T) {
	tk := newTokens("old", "new")
	svc := newAuthority(t, &server.Options{Authenticate: tk.authenticate})
	seed(t, svc, "", 12, false)
	s := serve(t, svc, server.Limits{})
	var asked atomic.Int64
	c := websocket.NewClient(s.url, &websocket.Options{Token: func(_ context.Context, refresh bool) (string, error) {
		asked.Add(1)
		if refresh {
			return "new", nil
		}
		return "old", nil
	}})
	defer c.Close()
	if _, err := c.Pull(t.Context(), core.PullRequest{Kind: todo, Limit: 1}); err != nil {
		t.Fatal(err)
	}
	tk.set("old", false) // the next request closes the socket with 4001
	got := walkByStream(t, c, core.PullRequest{Kind: todo, Limit: 5})
	samePages(t, got, walkByPull(as(t, ""), t, svc, core.PullRequest{Kind: todo, Limit: 5}))
	if asked.Load() < 2 {
		t.Fatalf("the token source was asked %d times, want a refresh", asked.Load())
	}
}

// The socket's reader never waits for a stream's consumer: while yield is
// stuck on a page, with the window's pages waiting on the client, a push on
// the same socket is answered and its notice arrives; then the walk ends
// with every page.
func TestStreamSlowConsumer(t *testing.T) {
	o := observe(newAuthority(t, nil))
	seed(t, o.Service, "", 40, false)
	s := serve(t, o, server.Limits{})
	c := newClient(t, s.url, "", nil)
	notices, err := c.Subscribe(t.Context(), []string{todo})
	if err != nil {
		t.Fatal(err)
	}
	stuck, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	var pages []core.Page
	go func() {
		done <- c.PullPages(t.Context(), core.PullRequest{Kind: todo, Limit: 2}, func(p core.Page) error {
			if pages = append(pages, p); len(pages) == 1 {
				close(stuck)
				<-release
			}
			return nil
		})
	}()
	<-stuck
	// The half has sent the whole window (4 pages) and holds the 5th: the
	// push's answer comes behind pages the consumer has not taken.
	o.waitEntered(t, 5)
	pctx, cancel := context.WithTimeout(t.Context(), 15*time.Second) // a blocked reader fails here, not by hanging
	defer cancel()
	res, err := c.Push(pctx, []core.Op{{OpID: "slow-1", Kind: todo, ID: "zz", Type: core.OpUpsert, Payload: json.RawMessage(`{"title":"z"}`)}})
	if err != nil || res[0].Status != core.StatusApplied {
		t.Fatalf("push beside a stuck stream: %+v, %v", res, err)
	}
	for n := range notices {
		if n.ID == "zz" {
			break
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var rows int
	for _, p := range pages {
		rows += len(p.Records)
	}
	if rows < 40 {
		t.Fatalf("%d rows streamed, want the 40 seeded (and maybe the push)", rows)
	}
}

// shortWalk is an authority whose walks stop after their first page
// without an error, against the PageStreamer contract.
type shortWalk struct{ *server.Service }

func (s shortWalk) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	p, err := s.Pull(ctx, req)
	if err != nil {
		return err
	}
	return yield(p)
}

// A walk the authority ends before its last page ends the stream with a
// retryable error (503), not with silence.
func TestStreamAuthorityStopsEarly(t *testing.T) {
	svc := newAuthority(t, nil)
	seed(t, svc, "", 6, false)
	s := serve(t, shortWalk{svc}, server.Limits{})
	r := dialRaw(t, s.url, "")
	r.send(`{"t":"pullPages","id":1,"kind":"todo","limit":2,"window":4}`)
	if _, last := r.readPage(1); last {
		t.Fatal("the first of 3 pages is the last")
	}
	wantError(t, r.read(), 1, 503, "unavailable")
	r.alive(2)

	c := newClient(t, s.url, "", nil)
	n := 0
	err := c.PullPages(t.Context(), core.PullRequest{Kind: todo, Limit: 2}, func(core.Page) error { n++; return nil })
	if !errors.Is(err, core.ErrUnavailable) || n != 1 {
		t.Fatalf("PullPages of a walk cut short: %v after %d pages", err, n)
	}
}
