package offsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// The "toy" wire form is a third party's driver, written outside the
// module's drivers: JSON bodies POSTed to /pull and /push. Its server half
// and its client register by name, as a real driver does, and nothing else
// in offsync knows of them.

type toyHalf struct {
	t    core.Transport
	done chan struct{}
}

func (h *toyHalf) Shutdown(context.Context) error {
	select {
	case <-h.done:
	default:
		close(h.done)
	}
	return nil
}

func (h *toyHalf) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var tok string
	if a := r.Header.Get("Authorization"); a != "" {
		tok = strings.TrimPrefix(a, "Bearer ")
	}
	ctx, err := server.Authenticate(r.Context(), h.t, tok)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var out any
	switch r.URL.Path {
	case "/pull":
		var req core.PullRequest
		if err = json.NewDecoder(r.Body).Decode(&req); err == nil {
			out, err = h.t.Pull(ctx, req)
		}
	case "/push":
		var ops []core.Op
		if err = json.NewDecoder(r.Body).Decode(&ops); err == nil {
			out, err = h.t.Push(ctx, ops)
		}
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	_ = json.NewEncoder(w).Encode(out)
}

type toyClient struct {
	url, token string
}

func (c *toyClient) call(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("toy: %w: %v", core.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("toy: %w: %d %s", core.ErrUnavailable, resp.StatusCode, msg)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *toyClient) Pull(ctx context.Context, req core.PullRequest) (p core.Page, err error) {
	return p, c.call(ctx, "/pull", req, &p)
}

func (c *toyClient) Push(ctx context.Context, ops []core.Op) (res []core.PushResult, err error) {
	return res, c.call(ctx, "/push", ops, &res)
}

func init() {
	server.RegisterTransport("toy", server.TransportDriver{Path: "/toy", Rank: 100,
		Open: func(_ context.Context, t core.Transport, cfg server.TransportConfig) (server.TransportServer, error) {
			if len(cfg.Options) > 0 {
				return nil, fmt.Errorf("%w: toy takes no options", core.ErrInvalid)
			}
			return &toyHalf{t: t, done: make(chan struct{})}, nil
		}})
	core.RegisterTransport("toy", func(_ context.Context, url string, opts map[string]any) (core.Transport, error) {
		tok, _ := opts["token"].(string)
		return &toyClient{url: url, token: tok}, nil
	})
}

// serveWith runs offsync.ServeWith on a config text and returns the
// endpoints it reported ready; the server stops when the test ends.
func serveWith(t *testing.T, dir, yaml string) map[string]string {
	t.Helper()
	cfg, err := config.ParseServer([]byte(yaml), filepath.Join(dir, "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	stop, endpoints := startServe(t, cfg)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return endpoints
}

// startServe starts ServeWith(cfg) and waits for it to be ready; stop ends
// it and returns Serve's error.
func startServe(t *testing.T, cfg *config.Server) (stop func() error, endpoints map[string]string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan map[string]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- offsync.ServeWith(ctx, cfg, &offsync.ServeOptions{
			Logger: slog.New(slog.DiscardHandler),
			Ready:  func(e map[string]string) { ready <- e },
		})
	}()
	select {
	case e := <-ready:
		return func() error { cancel(); return <-done }, e
	case err := <-done:
		cancel()
		t.Fatalf("Serve returned before it was ready: %v", err)
	}
	return nil, nil
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %v", url, resp.StatusCode, err)
	}
	return m
}

// A third party's wire form plugs in by name: composed from YAML next to
// REST, listed in /health, and a replica syncs through it.
func TestComposeThirdPartyTransport(t *testing.T) {
	dir := t.TempDir()
	ep := serveWith(t, dir, `store: {dsn: `+filepath.Join(dir, "server.db")+`}
server:
  http: 127.0.0.1:0
  kinds: [note]
  tokens: [{token: tok-1, principal: alice}]
  transports:
    rest: {}
    toy: {path: /toy}
`)
	restURL := strings.TrimSuffix(ep["rest"], "/")
	if ep["toy"] != restURL+"/toy" {
		t.Fatalf("endpoints %v", ep)
	}
	health := getJSON(t, restURL+"/health")
	served, _ := health["transports"].(map[string]any)
	if len(served) != 2 || served["rest"] != "/" || served["toy"] != "/toy" {
		t.Fatalf("/health transports: %v", health["transports"])
	}

	ctx := context.Background()
	open := func(name, driver, url string) *core.Engine {
		cfg, err := config.ParseClient([]byte(fmt.Sprintf(`store: {dsn: %q}
transport: {driver: %s, url: %q, token: tok-1}
tables: {note: {}}
`, filepath.Join(dir, name), driver, url)), filepath.Join(dir, "client.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		eng, err := offsync.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
		return eng
	}
	a := open("a.db", "toy", ep["toy"])
	b := open("b.db", "rest", restURL)
	notes, _ := a.Table("note")
	if err := core.DocsFor(a, notes.(*core.DocumentTable)).Put(ctx, "n1", map[string]any{"title": "through the toy"}); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Sync(ctx); err != nil || st.Pushed != 1 {
		t.Fatalf("sync A over toy: %+v %v", st, err)
	}
	if st, err := b.Sync(ctx); err != nil || st.Pulled != 1 {
		t.Fatalf("sync B over rest: %+v %v", st, err)
	}
	rec, err := b.Get(ctx, "note", "n1")
	if err != nil || !strings.Contains(string(rec.Data), "through the toy") {
		t.Fatalf("B has %s %v", rec.Data, err)
	}
	// And back: B's edit reaches A through the toy.
	bn, _ := b.Table("note")
	if err := core.DocsFor(b, bn.(*core.DocumentTable)).Put(ctx, "n2", map[string]any{"title": "through rest"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Sync(ctx); err != nil || st.Pulled == 0 {
		t.Fatalf("sync A: %+v %v", st, err)
	}
	if _, err := a.Get(ctx, "note", "n2"); err != nil {
		t.Fatalf("A lacks n2: %v", err)
	}
}

// Mistakes in the transports section point at their line; an unknown name
// lists the known ones.
func TestComposeTransportMistakes(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"transports: {smoke_signals: {}}", `unknown transport "smoke_signals" (forgotten import?); known: rest`},
		{"transports: {}", "no transport is served"},
		{"transports: {rest: {addr: '127.0.0.1:9'}}", "set path, not addr"},
		{"transports: {rest: {path: 'ws'}}", "must start with /"},
		{"transports: {rest: {options: {colour: red}}}", `unknown option "colour"`},
	} {
		dir := t.TempDir()
		text := "store: {dsn: " + filepath.Join(dir, "s.db") + "}\nserver:\n  http: 127.0.0.1:0\n  kinds: [note]\n  " + c.yaml + "\n"
		cfg, err := config.ParseServer([]byte(text), filepath.Join(dir, "server.yaml"))
		if err == nil {
			err = offsync.ServeWith(context.Background(), cfg, &offsync.ServeOptions{Logger: slog.New(slog.DiscardHandler)})
		}
		var pe *config.Error
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.As(err, &pe) || pe.Line != 5 {
			t.Errorf("%s: %v, want %q at line 5", c.yaml, err, c.want)
		}
	}
}

// Without TLS a server refuses a non-loopback address unless told.
func TestServeRefusesInsecureAddress(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.ParseServer([]byte("store: {dsn: "+filepath.Join(dir, "s.db")+"}\nserver: {http: '0.0.0.0:0', kinds: [note]}\n"), filepath.Join(dir, "s.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	err = offsync.ServeWith(context.Background(), cfg, &offsync.ServeOptions{Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "TLS is off") {
		t.Fatalf("non-loopback without TLS: %v", err)
	}
	cfg.Server.AllowInsecure = true
	stop, ep := startServe(t, cfg)
	if ep["rest"] == "" {
		t.Fatalf("endpoints %v", ep)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Every registered server half starts, serves, shuts down and starts again
// on the same address (the lifecycle of each half, alone on its server).
func TestEveryServerHalfLifecycle(t *testing.T) {
	for _, name := range server.Transports() {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			text := "store: {dsn: " + filepath.Join(dir, "s.db") + "}\nserver:\n  http: 127.0.0.1:0\n  kinds: [note]\n  shutdown_timeout: 5s\n  transports: {" + name + ": {}}\n"
			cfg, err := config.ParseServer([]byte(text), filepath.Join(dir, "server.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			stop, ep := startServe(t, cfg)
			addr := dialable(t, ep[name])
			if err := stop(); err != nil {
				t.Fatalf("first shutdown: %v", err)
			}
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				t.Fatalf("%s still accepts connections after shutdown", addr)
			}
			// Again, on the very same address.
			d, _ := server.LookupTransport(name)
			if d.OwnsListener() {
				cfg.Server.Transports[name] = config.ServeTransport{Addr: addr}
			} else {
				cfg.Server.HTTP = addr
			}
			stop, ep = startServe(t, cfg)
			if got := dialable(t, ep[name]); got != addr {
				t.Fatalf("restarted at %s, want %s", got, addr)
			}
			if err := stop(); err != nil {
				t.Fatalf("second shutdown: %v", err)
			}
		})
	}
}

// dialable checks that an endpoint URL's host accepts connections and
// returns host:port.
func dialable(t *testing.T, endpoint string) string {
	t.Helper()
	_, rest, ok := strings.Cut(endpoint, "://")
	if !ok {
		t.Fatalf("endpoint %q has no scheme", endpoint)
	}
	addr, _, _ := strings.Cut(rest, "/")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", endpoint, err)
	}
	c.Close()
	return addr
}

// One server, every wire form at once: a replica on each registered client
// transport writes a note, and after two rounds of syncs every replica has
// every note.
func TestEveryTransportOneServer(t *testing.T) {
	dir := t.TempDir()
	ep := serveWith(t, dir, `store: {dsn: `+filepath.Join(dir, "server.db")+`}
server:
  http: 127.0.0.1:0
  kinds: [note]
  tokens: [{token: tok-1, principal: alice}]
`)
	ctx := context.Background()
	var engines []*core.Engine
	var names []string
	for _, name := range core.TransportDrivers() {
		url, served := ep[name]
		if !served {
			continue
		}
		if name == "rest" {
			url = strings.TrimSuffix(url, "/")
		}
		cfg, err := config.ParseClient([]byte(fmt.Sprintf(`store: {dsn: %q}
transport: {driver: %s, url: %q, token: tok-1}
tables: {note: {}}
`, filepath.Join(dir, name+".db"), name, url)), filepath.Join(dir, "client.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		eng, err := offsync.Open(ctx, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { eng.Close() })
		notes, _ := eng.Table("note")
		if err := core.DocsFor(eng, notes.(*core.DocumentTable)).Put(ctx, "from-"+name, map[string]any{"via": name}); err != nil {
			t.Fatal(err)
		}
		engines = append(engines, eng)
		names = append(names, name)
	}
	if len(names) < 2 {
		t.Fatalf("only %v served and registered", names)
	}
	for round := range 2 {
		for i, eng := range engines {
			if _, err := eng.Sync(ctx); err != nil {
				t.Fatalf("round %d, sync over %s: %v", round, names[i], err)
			}
		}
	}
	for i, eng := range engines {
		for _, from := range names {
			if _, err := eng.Get(ctx, "note", "from-"+from); err != nil {
				t.Errorf("the replica on %s lacks the note written over %s: %v", names[i], from, err)
			}
		}
	}
}
