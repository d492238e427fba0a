package websocket_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/websocket"
	"github.com/offsync/offsync/server"
)

const todo = "todo"

// newAuthority is a server.Service over a fresh SQLite store serving the
// documents kind todo.
func newAuthority(t testing.TB, opts *server.Options) *server.Service {
	t.Helper()
	st := newStore(t)
	if opts == nil {
		opts = &server.Options{}
	}
	if len(opts.Tables) == 0 {
		opts.Tables = []core.Table{core.Documents(todo)}
	}
	svc, err := server.New(context.Background(), st, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// tokens is an authenticator whose set of valid tokens changes.
type tokens struct {
	mu    sync.Mutex
	valid map[string]bool
}

func newTokens(valid ...string) *tokens {
	tk := &tokens{valid: map[string]bool{}}
	for _, v := range valid {
		tk.valid[v] = true
	}
	return tk
}

func (tk *tokens) set(tok string, ok bool) {
	tk.mu.Lock()
	tk.valid[tok] = ok
	tk.mu.Unlock()
}

func (tk *tokens) authenticate(_ context.Context, tok string) (core.Principal, error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	if tk.valid[tok] {
		return core.Principal{ID: "user"}, nil
	}
	return core.Principal{}, fmt.Errorf("token %q: %w", tok, core.ErrUnauthorized)
}

// raw is a socket driven frame by frame, as a client in another language
// would.
type raw struct {
	t     *testing.T
	c     *ws.Conn
	hello map[string]any
}

func dialRaw(t *testing.T, url, token string) *raw {
	t.Helper()
	opts := &ws.DialOptions{Subprotocols: []string{websocket.Subprotocol}}
	if token != "" {
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + token}}
	}
	c, _, err := ws.Dial(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(-1)
	t.Cleanup(func() { c.CloseNow() })
	r := &raw{t: t, c: c}
	r.hello = r.read()
	if r.hello["t"] != "hello" {
		t.Fatalf("first frame %v, want a hello", r.hello)
	}
	return r
}

func (r *raw) send(frame string) {
	r.t.Helper()
	if err := r.c.Write(r.t.Context(), ws.MessageText, []byte(frame)); err != nil {
		r.t.Fatalf("send %s: %v", frame, err)
	}
}

// read returns the next frame; a closed socket fails the test.
func (r *raw) read() map[string]any {
	r.t.Helper()
	m, err := r.next()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return m
}

func (r *raw) next() (map[string]any, error) {
	_, b, err := r.c.Read(r.t.Context())
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		r.t.Fatalf("the server sent a frame that is not JSON: %q", b)
	}
	return m, nil
}

// closed reads until the socket ends and returns its close code.
func (r *raw) closed() ws.StatusCode {
	r.t.Helper()
	for {
		if _, err := r.next(); err != nil {
			return ws.CloseStatus(err)
		}
	}
}

// wantError checks an error answer: its id (0: none) and status and code.
func wantError(t *testing.T, m map[string]any, id float64, status float64, code string) {
	t.Helper()
	gotID, _ := m["id"].(float64)
	if m["t"] != "error" || gotID != id || m["status"] != status || m["error"] != code {
		t.Fatalf("answer %v, want error id=%v status=%v error=%s", m, id, status, code)
	}
}

// alive checks the socket still answers.
func (r *raw) alive(id int) {
	r.t.Helper()
	r.send(fmt.Sprintf(`{"t":"ping","id":%d}`, id))
	if m := r.read(); m["t"] != "pong" || m["id"] != float64(id) {
		r.t.Fatalf("ping %d answered %v", id, m)
	}
}

func countRecords(t *testing.T, svc *server.Service) int {
	t.Helper()
	p, err := svc.Pull(core.WithPrincipal(t.Context(), core.Principal{ID: "user"}), core.PullRequest{Kind: todo, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.Records)
}

const pushOne = `{"t":"push","id":%d,"ops":[{"opId":"op-%d","kind":"todo","id":"r%d","type":"upsert","payload":{"title":"x"}}]}`

// Every malformed frame gets its exact close code or error answer; the
// server survives, the socket too when the frame could be attributed, and
// nothing is written.
func TestBadFrames(t *testing.T) {
	svc := newAuthority(t, nil)
	s := serve(t, svc, server.Limits{MaxMessage: 1024})
	closes := []struct {
		name  string
		frame string
		bin   bool
		code  ws.StatusCode
	}{
		{"malformed JSON", `{"t":"push","id":1,"ops":[`, false, ws.StatusInvalidFramePayloadData},
		{"not an object", `[{"t":"ping","id":1}]`, false, ws.StatusInvalidFramePayloadData},
		{"a string", `"ping"`, false, ws.StatusInvalidFramePayloadData},
		{"binary frame", fmt.Sprintf(pushOne, 1, 1, 1), true, ws.StatusUnsupportedData},
		{"over maxMessage", fmt.Sprintf(`{"t":"push","id":1,"ops":[{"opId":"o","kind":"todo","id":"big","type":"upsert","payload":{"b":"%s"}}]}`, strings.Repeat("x", 2000)), false, ws.StatusMessageTooBig},
	}
	for _, c := range closes {
		t.Run(c.name, func(t *testing.T) {
			r := dialRaw(t, s.url, "")
			typ := ws.MessageText
			if c.bin {
				typ = ws.MessageBinary
			}
			if err := r.c.Write(t.Context(), typ, []byte(c.frame)); err != nil {
				t.Fatal(err)
			}
			if code := r.closed(); code != c.code {
				t.Fatalf("closed with %d, want %d", code, c.code)
			}
			dialRaw(t, s.url, "").alive(1) // the server survives
		})
	}
	answers := []struct {
		name   string
		frames []string // the last one is the bad one
		id     float64
		status float64
		code   string
	}{
		{"unknown t", []string{`{"t":"subscribe","id":1,"kinds":["todo"]}`}, 1, 400, "bad_request"},
		{"missing t", []string{`{"id":1}`}, 1, 400, "bad_request"},
		{"missing id", []string{`{"t":"pull","kind":"todo"}`}, 0, 400, "bad_request"},
		{"id not a number", []string{`{"t":"pull","id":"one","kind":"todo"}`}, 0, 400, "bad_request"},
		{"repeated id", []string{`{"t":"ping","id":5}`, fmt.Sprintf(pushOne, 5, 5, 5)}, 5, 400, "bad_request"},
		{"id going back", []string{`{"t":"ping","id":7}`, fmt.Sprintf(pushOne, 6, 6, 6)}, 6, 400, "bad_request"},
		{"member of the wrong type", []string{`{"t":"push","id":1,"ops":{"opId":"o"}}`}, 1, 400, "bad_request"},
		{"push with a bad op", []string{`{"t":"push","id":1,"ops":[{"opId":"o","kind":"todo","id":"x","type":"merge","payload":{}}]}`}, 1, 400, "bad_request"},
		{"push with a repeated op id", []string{`{"t":"push","id":1,"ops":[{"opId":"o","kind":"todo","id":"x","type":"upsert","payload":{}},{"opId":"o","kind":"todo","id":"y","type":"upsert","payload":{}}]}`}, 1, 400, "bad_request"},
		{"pull without a kind", []string{`{"t":"pull","id":1}`}, 1, 400, "bad_request"},
		{"pull with limit 0", []string{`{"t":"pull","id":1,"kind":"todo","limit":0}`}, 1, 400, "bad_request"},
		{"pull with a forged token", []string{`{"t":"pull","id":1,"kind":"todo","pageToken":"forged"}`}, 1, 400, "bad_cursor"},
		{"pull with a bad cursor time", []string{`{"t":"pull","id":1,"kind":"todo","after":{"updated_at":"yesterday"}}`}, 1, 400, "bad_request"},
		{"pull of an unknown kind", []string{`{"t":"pull","id":1,"kind":"nope"}`}, 1, 404, "unknown_kind"},
		{"get of a missing record", []string{`{"t":"get","id":1,"kind":"todo","rid":"none"}`}, 1, 404, "not_found"},
		{"unsub of no subscription", []string{`{"t":"unsub","id":1,"sub":9}`}, 1, 404, "not_found"},
	}
	for _, c := range answers {
		t.Run(c.name, func(t *testing.T) {
			r := dialRaw(t, s.url, "")
			for i, f := range c.frames {
				r.send(f)
				m := r.read()
				if i == len(c.frames)-1 {
					wantError(t, m, c.id, c.status, c.code)
				}
			}
			r.alive(100) // the socket survives
		})
	}
	if n := countRecords(t, svc); n != 0 {
		t.Fatalf("%d records written by bad frames", n)
	}
}

// A request before auth, when the authority needs a token, is answered 401
// and the socket waits for its auth frame; an auth frame's token is
// checked; a socket that never authenticates is closed with 4001.
func TestAuthFrame(t *testing.T) {
	tk := newTokens("good")
	svc := newAuthority(t, &server.Options{Authenticate: tk.authenticate})
	s := serve(t, svc, server.Limits{AuthTimeout: 200 * time.Millisecond})

	r := dialRaw(t, s.url, "")
	if r.hello["auth"] != true {
		t.Fatalf("hello %v does not ask for an auth frame", r.hello)
	}
	r.send(fmt.Sprintf(pushOne, 1, 1, 1))
	wantError(t, r.read(), 1, 401, "unauthorized")
	r.send(`{"t":"auth","id":2,"token":"good"}`)
	if m := r.read(); m["t"] != "ok" || m["id"] != float64(2) {
		t.Fatalf("auth answered %v", m)
	}
	r.send(fmt.Sprintf(pushOne, 3, 3, 3))
	if m := r.read(); m["t"] != "results" {
		t.Fatalf("push after auth answered %v", m)
	}
	if n := countRecords(t, svc); n != 1 {
		t.Fatalf("%d records, want only the push made after auth", n)
	}

	bad := dialRaw(t, s.url, "")
	bad.send(`{"t":"auth","id":1,"token":"bad"}`)
	if code := bad.closed(); code != websocket.CloseUnauthorized {
		t.Fatalf("a refused auth frame closed with %d, want 4001", code)
	}
	silent := dialRaw(t, s.url, "")
	if code := silent.closed(); code != websocket.CloseUnauthorized {
		t.Fatalf("a socket that never authenticated closed with %d, want 4001", code)
	}
	header := dialRaw(t, s.url, "bad")
	if code := header.closed(); code != websocket.CloseUnauthorized {
		t.Fatalf("a refused handshake token closed with %d, want 4001", code)
	}
	if n := countRecords(t, svc); n != 1 {
		t.Fatalf("%d records, want 1", n)
	}
}

// A token that expires mid-socket closes it with 4001 at the next request,
// which is not served; a token replaced on the live socket keeps it open.
func TestTokenExpiresMidSocket(t *testing.T) {
	tk := newTokens("t1", "t2")
	svc := newAuthority(t, &server.Options{Authenticate: tk.authenticate})
	s := serve(t, svc, server.Limits{})

	r := dialRaw(t, s.url, "t1")
	r.send(fmt.Sprintf(pushOne, 1, 1, 1))
	if m := r.read(); m["t"] != "results" {
		t.Fatalf("push answered %v", m)
	}
	r.send(`{"t":"auth","id":2,"token":"t2"}`)
	if m := r.read(); m["t"] != "ok" {
		t.Fatalf("replacing the token answered %v", m)
	}
	tk.set("t1", false)
	r.send(fmt.Sprintf(pushOne, 3, 3, 3))
	if m := r.read(); m["t"] != "results" {
		t.Fatalf("push with the replaced token answered %v", m)
	}
	tk.set("t2", false)
	r.send(fmt.Sprintf(pushOne, 4, 4, 4))
	if code := r.closed(); code != websocket.CloseUnauthorized {
		t.Fatalf("closed with %d, want 4001", code)
	}
	if n := countRecords(t, svc); n != 2 {
		t.Fatalf("%d records, want 2: the push after the expiry must not be written", n)
	}
}

// gate is an authority whose pulls wait for a release, to hold requests in
// flight.
type gate struct {
	*server.Service
	entered chan struct{}
	release chan struct{}
}

func (g *gate) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.Service.Pull(ctx, req)
}

// Beyond maxInFlight requests on one socket, a request is answered 429; the
// others are served.
func TestMaxInFlight(t *testing.T) {
	g := &gate{Service: newAuthority(t, nil), entered: make(chan struct{}, 4), release: make(chan struct{})}
	s := serve(t, g, server.Limits{MaxInFlight: 2})
	r := dialRaw(t, s.url, "")
	if r.hello["maxInFlight"] != float64(2) {
		t.Fatalf("hello %v", r.hello)
	}
	r.send(`{"t":"pull","id":1,"kind":"todo"}`)
	r.send(`{"t":"pull","id":2,"kind":"todo"}`)
	<-g.entered
	<-g.entered
	r.send(`{"t":"pull","id":3,"kind":"todo"}`)
	m := r.read()
	wantError(t, m, 3, 429, "rate_limited")
	close(g.release)
	got := map[float64]bool{}
	for range 2 {
		m := r.read()
		if m["t"] != "page" {
			t.Fatalf("answer %v, want a page", m)
		}
		got[m["id"].(float64)] = true
	}
	if !got[1] || !got[2] {
		t.Fatalf("pages for %v, want 1 and 2", got)
	}
	r.alive(4)
}

// logWatch is a slog handler that signals a message.
type logWatch struct {
	msg string
	hit chan struct{}
	one sync.Once
}

func (l *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (l *logWatch) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, l.msg) {
		l.one.Do(func() { close(l.hit) })
	}
	return nil
}
func (l *logWatch) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logWatch) WithGroup(string) slog.Handler      { return l }

// A client that never reads is closed with 1008 once its send queue is
// full: the server never buffers for it without limit.
func TestClientThatNeverReads(t *testing.T) {
	svc := newAuthority(t, nil)
	big := strings.Repeat("x", 2000)
	var ops []core.Op
	for i := range 400 {
		ops = append(ops, core.Op{OpID: fmt.Sprintf("o%d", i), Kind: todo, ID: fmt.Sprintf("r%03d", i), Type: core.OpUpsert,
			Payload: json.RawMessage(`{"b":"` + big + `"}`)})
	}
	if _, err := svc.Push(t.Context(), ops); err != nil {
		t.Fatal(err)
	}
	watch := &logWatch{msg: "does not read fast enough", hit: make(chan struct{})}
	half, err := server.OpenServer(t.Context(), "websocket", svc, server.TransportConfig{
		Limits: server.Limits{SendQueue: 2, MaxInFlight: 64, Heartbeat: 20 * time.Second}, Logger: slog.New(watch)})
	if err != nil {
		t.Fatal(err)
	}
	s := serveHalf(t, half)
	r := dialRaw(t, s.url, "")
	// 60 pulls of ~800 kB each, never read, overflow any socket buffer.
	for i := 1; i <= 60; i++ {
		r.send(fmt.Sprintf(`{"t":"pull","id":%d,"kind":"todo","limit":400}`, i))
	}
	<-watch.hit
	if code := r.closed(); code != ws.StatusPolicyViolation {
		t.Fatalf("closed with %d, want 1008", code)
	}
	dialRaw(t, s.url, "").alive(1)
}

// Shutdown closes every socket with 1001.
func TestShutdownGoingAway(t *testing.T) {
	svc := newAuthority(t, nil)
	s := serve(t, svc, server.Limits{})
	r := dialRaw(t, s.url, "")
	r.alive(1)
	if err := s.half.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if code := r.closed(); code != ws.StatusGoingAway {
		t.Fatalf("closed with %d, want 1001", code)
	}
}

// The hello frame comes first with the limits.
func TestHello(t *testing.T) {
	svc := newAuthority(t, &server.Options{MaxBatch: 7})
	s := serve(t, svc, server.Limits{MaxMessage: 5000, MaxInFlight: 3, Heartbeat: 1500 * time.Millisecond})
	r := dialRaw(t, s.url, "")
	want := map[string]any{"t": "hello", "protocol": float64(1), "maxBatch": float64(7), "maxMessage": float64(5000),
		"maxInFlight": float64(3), "heartbeat": float64(1500)}
	for k, v := range want {
		if r.hello[k] != v {
			t.Errorf("hello[%s] = %v, want %v (hello %v)", k, r.hello[k], v, r.hello)
		}
	}
	if _, ok := r.hello["maxLimit"]; !ok {
		t.Errorf("hello %v has no maxLimit", r.hello)
	}
}

// A handshake without the subprotocol is refused.
func TestSubprotocolRequired(t *testing.T) {
	svc := newAuthority(t, nil)
	s := serve(t, svc, server.Limits{})
	c, _, err := ws.Dial(t.Context(), s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_, _, err = c.Read(t.Context())
	if code := ws.CloseStatus(err); code != ws.StatusPolicyViolation {
		t.Fatalf("read %v (code %d), want a 1008 close", err, code)
	}
}

// Unknown server options are refused by name.
func TestUnknownOption(t *testing.T) {
	svc := newAuthority(t, nil)
	_, err := server.OpenServer(t.Context(), "websocket", svc, server.TransportConfig{Options: map[string]any{"queue": 3}})
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "queue") {
		t.Fatalf("open with an unknown option: %v", err)
	}
}
