package core_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
	"github.com/uptrace/bun"
)

// Todo is the typed model of the tests; Note is a local-only column.
type Todo struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Done          bool   `json:"done"`
	Note          string `json:"-" offsync:"local"`
	core.SyncColumns
}

var (
	todos    = core.NewTable[Todo]("todo")
	projects = core.Documents("project")
	notes    = core.Documents("note")
)

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
func newAuthority(t testing.TB, opts *server.Options) *server.Service {
	t.Helper()
	var o server.Options
	if opts != nil {
		o = *opts
	}
	o.Tables = []core.Table{projects, todos, notes}
	svc, err := server.New(context.Background(), openStore(t, "authority.db"), &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

type replica struct {
	eng   *core.Engine
	store core.Store
	todos *core.Writer[Todo]
	notes *core.DocWriter
	projs *core.DocWriter
}

func newReplicaOn(t testing.TB, st core.Store, tr core.Transport, opts *core.Options) *replica {
	t.Helper()
	var o core.Options
	if opts != nil {
		o = *opts
	}
	if o.Tables == nil {
		o.Tables = []core.Table{projects, todos, notes}
	}
	if o.Clock == nil {
		o.Clock = core.NewManualClock(t0)
	}
	eng, err := core.NewEngine(context.Background(), st, tr, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &replica{eng: eng, store: st, todos: core.WriterFor(eng, todos),
		notes: core.DocsFor(eng, notes), projs: core.DocsFor(eng, projects)}
}

func newReplica(t testing.TB, tr core.Transport, opts *core.Options) *replica {
	return newReplicaOn(t, openStore(t, "replica.db"), tr, opts)
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

func (r *replica) todo(t testing.TB, id string) (Todo, bool) {
	t.Helper()
	rec, err := r.eng.Get(context.Background(), "todo", id)
	if errors.Is(err, core.ErrNotFound) {
		return Todo{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	m, err := todos.Model(rec)
	if err != nil {
		t.Fatal(err)
	}
	return *m, true
}

func mustSync(t testing.TB, r *replica, opts ...core.SyncOption) core.Stats {
	t.Helper()
	st, err := r.eng.Sync(context.Background(), opts...)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return st
}

func authGet(t testing.TB, svc *server.Service, kind, id string) (core.Record, bool) {
	t.Helper()
	rec, err := svc.Get(context.Background(), kind, id)
	if errors.Is(err, core.ErrNotFound) {
		return core.Record{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return rec, true
}

func field(t testing.TB, rec core.Record, name string) any {
	t.Helper()
	m, err := rec.Fields()
	if err != nil {
		t.Fatal(err)
	}
	return m[name]
}

// wire sits between an engine and a real authority, like a network would:
// it records what passes and lets a test alter a call. It is not a mock of
// the authority, which always answers for real.
type wire struct {
	inner core.Transport

	mu     sync.Mutex
	pushes [][]core.Op
	pulls  []string
	// onPush, when set, replaces the call to the authority.
	onPush func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error)
	// onPull, when set, rewrites a page.
	onPull func(p core.Page) core.Page
}

func (w *wire) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	w.mu.Lock()
	w.pulls = append(w.pulls, req.Kind)
	f := w.onPull
	w.mu.Unlock()
	p, err := w.inner.Pull(ctx, req)
	if err == nil && f != nil {
		p = f(p)
	}
	return p, err
}

func (w *wire) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	w.mu.Lock()
	w.pushes = append(w.pushes, slices.Clone(ops))
	f := w.onPush
	w.mu.Unlock()
	if f != nil {
		return f(ctx, ops, w.inner)
	}
	return w.inner.Push(ctx, ops)
}

func (w *wire) Get(ctx context.Context, kind, id string) (core.Record, error) {
	return w.inner.(core.Getter).Get(ctx, kind, id)
}

func (w *wire) set(push func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error)) {
	w.mu.Lock()
	w.onPush = push
	w.mu.Unlock()
}

// pushCount returns how many times each op ID was pushed.
func (w *wire) pushCount() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := map[string]int{}
	for _, b := range w.pushes {
		for _, op := range b {
			n[op.OpID]++
		}
	}
	return n
}

func (w *wire) reset() {
	w.mu.Lock()
	w.pushes, w.pulls = nil, nil
	w.mu.Unlock()
}

var errOffline = errors.Join(core.ErrUnavailable, errors.New("test: connection refused"))

// dropAnswer delivers the push, then loses the answer, as a cut connection would.
func dropAnswer(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
	if _, err := inner.Push(ctx, ops); err != nil {
		return nil, err
	}
	return nil, errOffline
}

func openStoreAt(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// serverOptionsClock stamps versions with microseconds that a truncation
// would lose.
var serverOptionsClock = server.Options{Clock: core.NewManualClock(t0)}

func tempDir() (string, error) { return os.MkdirTemp("", "offsync-bench-") }
