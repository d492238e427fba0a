package offsync_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
)

// addrHandler is a slog handler that hands over the "addr" of the first
// "listening on" record, so a test learns the port Serve bound.
type addrHandler struct {
	slog.Handler
	addr chan string
}

func (h addrHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "addr" {
			select {
			case h.addr <- a.Value.String():
			default:
			}
		}
		return true
	})
	return nil
}

func (h addrHandler) Enabled(context.Context, slog.Level) bool { return true }

// serve runs offsync.Serve from a server config text in dir and returns its
// URL; it stops at the end of the test.
func serve(t *testing.T, dir, yaml string) string {
	t.Helper()
	cfg, err := config.ParseServer([]byte(yaml), filepath.Join(dir, "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	prev := slog.Default()
	slog.SetDefault(slog.New(addrHandler{Handler: prev.Handler(), addr: addr}))
	t.Cleanup(func() { slog.SetDefault(prev) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- offsync.Serve(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatalf("Serve returned before listening: %v", err)
	}
	return ""
}

func clientConfig(t *testing.T, dir, name, url, extra string) *config.Client {
	t.Helper()
	t.Setenv("OFFSYNC_ROOT_TEST_TOKEN", "tok-1")
	cfg, err := config.ParseClient([]byte(fmt.Sprintf(`store: {dsn: %q}
transport: {url: %q, token: "${OFFSYNC_ROOT_TEST_TOKEN}"}
tables: {note: {}}
%s`, filepath.Join(dir, name), url, extra)), filepath.Join(dir, "client.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type Todo struct {
	ID    string `bun:"id,pk" json:"id"`
	Title string `json:"title"`
	core.SyncColumns
}

func TestOpenAndServe(t *testing.T) {
	dir := t.TempDir()
	url := serve(t, dir, `store: {dsn: `+filepath.Join(dir, "server.db")+`}
server:
  http: 127.0.0.1:0
  kinds: [note, todo]
  tokens: [{token: tok-1, principal: alice}]
  scope: {field: owner, kinds: [note]}
`)
	ctx := context.Background()
	todos := core.NewTable[Todo]("todo")
	a, err := offsync.Open(ctx, clientConfig(t, dir, "a.db", url, "conflicts: {kinds: {note: clientWins, todo: serverWins}}\n"), todos)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Kinds(); len(got) != 2 || got[0] != "todo" || got[1] != "note" {
		t.Fatalf("kinds %v: typed tables first, then the config's", got)
	}
	notes, _ := a.Table("note")
	if err := core.DocsFor(a, notes.(*core.DocumentTable)).Put(ctx, "n1", map[string]any{"title": "hi"}); err != nil {
		t.Fatal(err)
	}
	if err := core.WriterFor(a, todos).Insert(ctx, &Todo{ID: "t1", Title: "typed"}); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Sync(ctx); err != nil || st.Pushed != 2 {
		t.Fatalf("sync A: %+v %v", st, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	b, err := offsync.Open(ctx, clientConfig(t, dir, "b.db", url, ""), todos)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if st, err := b.Sync(ctx); err != nil || st.Pulled != 2 {
		t.Fatalf("sync B: %+v %v", st, err)
	}
	rec, err := b.Get(ctx, "note", "n1")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := rec.Fields()
	if f["title"] != "hi" || f["owner"] != "alice" {
		t.Fatalf("note on B: %v (the scope field is the principal)", f)
	}
	if opts := offsync.RunOptions(clientConfig(t, dir, "c.db", url, "sync: {push_on_write: true, realtime: true}\n")); len(opts) != 4 {
		t.Fatalf("%d run options, want 4", len(opts))
	}
}

func TestOpenErrorsPointAtTheConfig(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()

	cfg := clientConfig(t, dir, "x.db", "http://127.0.0.1:1", "conflicts: {kinds: {task: serverWins}}\n")
	_, err := offsync.Open(ctx, cfg)
	var pe *config.Error
	if !errors.Is(err, core.ErrUnknownKind) || !errors.As(err, &pe) || pe.Line != 4 {
		t.Fatalf("strategy for an unsynced kind: %v", err)
	}

	cfg = clientConfig(t, dir, "x.db", "http://127.0.0.1:1", "")
	cfg.Transport.Options = map[string]any{"retries": 3}
	_, err = offsync.Open(ctx, cfg)
	if !errors.Is(err, core.ErrInvalid) || !errors.As(err, &pe) || pe.Line != 2 {
		t.Fatalf("unknown transport option: %v", err)
	}

	cfg = clientConfig(t, dir, "x.db", "http://127.0.0.1:1", "")
	_, err = offsync.Open(ctx, cfg, core.Documents("note"))
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("a kind both typed and in the config: %v", err)
	}

	cfg = clientConfig(t, dir, "x.db", "http://127.0.0.1:1", "conflicts: {kinds: {note: {plugin: ./missing-plugin}}}\n")
	_, err = offsync.Open(ctx, cfg)
	if err == nil || !errors.As(err, &pe) || pe.Line != 4 {
		t.Fatalf("missing plugin binary: %v", err)
	}

	cfg = clientConfig(t, dir, filepath.Join("no", "such", "dir", "x.db"), "http://127.0.0.1:1", "")
	if _, err := offsync.Open(ctx, cfg); err == nil {
		t.Fatal("a store in a missing directory opened")
	}
	if _, err := offsync.Open(ctx, nil); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("nil config: %v", err)
	}
	if err := offsync.Serve(ctx, nil); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("nil server config: %v", err)
	}
}

func TestServeListenError(t *testing.T) {
	dir := t.TempDir()
	// A malformed address is refused when the config is read, at its line.
	_, err := config.ParseServer([]byte("store: {dsn: s.db}\nserver: {http: 'not an address', kinds: [note]}\n"), filepath.Join(dir, "s.yaml"))
	var pe *config.Error
	if !errors.As(err, &pe) || pe.Path != "server.http" || pe.Line != 2 {
		t.Fatalf("bad address: %v", err)
	}
	// An address in use fails at listen time, pointing at the same line.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg, err := config.ParseServer([]byte("store: {dsn: s.db}\nserver: {http: '"+taken.Addr().String()+"', kinds: [note]}\n"), filepath.Join(dir, "s.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store.DSN = filepath.Join(dir, "s.db")
	err = offsync.Serve(context.Background(), cfg)
	if !errors.As(err, &pe) || pe.Path != "server.http" || pe.Line != 2 || !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("listen error: %v", err)
	}
	if _, statErr := os.Stat(cfg.Store.DSN); statErr != nil {
		t.Fatalf("the store was not opened before listening: %v", statErr)
	}
}

func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-example-")
	defer os.RemoveAll(dir)
	cfg, err := config.ParseClient([]byte(`store: {dsn: `+filepath.Join(dir, "app.db")+`}
transport: {url: "http://127.0.0.1:1"}
tables: {note: {}}
`), "offsync.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	eng, err := offsync.Open(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer eng.Close()
	notes, _ := eng.Table("note")
	_ = core.DocsFor(eng, notes.(*core.DocumentTable)).Put(ctx, "n1", map[string]any{"title": "offline"})
	rec, _ := eng.Get(ctx, "note", "n1")
	fmt.Println(string(rec.Data))
	// Output: {"title":"offline"}
}
