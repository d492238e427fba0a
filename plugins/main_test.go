package plugins_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/plugins"
	"github.com/offsync/offsync/server"
)

// The plugin binaries, built once by TestMain.
var (
	inventoryBin  string
	testpluginBin string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "offsync-plugins-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-ldflags=-s -w", "-o", dir+string(filepath.Separator), "./examples/inventory", "./internal/testplugin")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test plugins:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	inventoryBin = filepath.Join(dir, "inventory")
	testpluginBin = filepath.Join(dir, "testplugin")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// quiet discards go-plugin's logs in tests.
var quiet = slog.New(slog.DiscardHandler)

func load(t testing.TB, path string, o *plugins.LoadOptions) *plugins.Plugin {
	t.Helper()
	if o == nil {
		o = &plugins.LoadOptions{}
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	p, err := plugins.Open(context.Background(), path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func sha256File(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fifo makes a named pipe: reading it blocks until the plugin writes it.
func fifo(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readPID(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return pid
}

// starts lists the pids the plugin recorded at each start.
func starts(t testing.TB, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, l := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(l)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, n)
	}
	return pids
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// items is the inventory kind.
var items = core.Documents("item")

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC)

func openStore(t testing.TB, name string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), name), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newAuthority is the reference authority on a SQLite file.
func newAuthority(t testing.TB) *server.Service {
	t.Helper()
	svc, err := server.New(context.Background(), openStore(t, "authority.db"),
		&server.Options{Tables: []core.Table{items}, Clock: core.NewManualClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

type replica struct {
	eng   *core.Engine
	store core.Store
	items *core.DocWriter
	subs  *core.Subscription
}

func newReplica(t testing.TB, name string, svc core.Transport, r core.Resolver) *replica {
	t.Helper()
	st := openStore(t, name+".db")
	eng, err := core.NewEngine(context.Background(), st, svc, &core.Options{
		Tables:    []core.Table{items},
		Conflicts: core.Conflicts{Kinds: map[string]core.Resolver{"item": r}},
		Clock:     core.NewManualClock(t0),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &replica{eng: eng, store: st, items: core.DocsFor(eng, items), subs: eng.Subscribe(1024)}
}

func (r *replica) put(t testing.TB, id string, data map[string]any) {
	t.Helper()
	if err := r.items.Put(context.Background(), id, data); err != nil {
		t.Fatal(err)
	}
}

func (r *replica) sync(t testing.TB) core.Stats {
	t.Helper()
	st, err := r.eng.Sync(context.Background())
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return st
}

func (r *replica) get(t testing.TB, id string) map[string]any {
	t.Helper()
	rec, err := r.eng.Get(context.Background(), "item", id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return fields(t, rec)
}

func (r *replica) ops(t testing.TB) []core.Op {
	t.Helper()
	var ops []core.Op
	err := r.store.View(context.Background(), func(ctx context.Context, tx core.Tx) error {
		var err error
		ops, err = tx.Ops(ctx, core.OpFilter{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// events drains the events emitted so far.
func (r *replica) events() []core.Event {
	var out []core.Event
	for {
		select {
		case ev := <-r.subs.C:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func fields(t testing.TB, rec core.Record) map[string]any {
	t.Helper()
	m, err := rec.Fields()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func authItem(t testing.TB, svc *server.Service, id string) map[string]any {
	t.Helper()
	rec, err := svc.Get(context.Background(), "item", id)
	if err != nil {
		t.Fatalf("authority get %s: %v", id, err)
	}
	return fields(t, rec)
}

// num renders a decoded number for comparison.
func num(v any) string { return fmt.Sprint(v) }

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func slogTo(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
