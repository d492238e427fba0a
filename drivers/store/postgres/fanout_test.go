package postgres_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/postgres"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/internal/pgtest"
	"github.com/offsync/offsync/server"
)

// newReplica is a core.Engine over a SQLite file of its own, syncing with tr.
func newReplica(t *testing.T, name string, tr core.Transport, tables ...core.Table) *core.Engine {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), name+".db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	eng, err := core.NewEngine(t.Context(), st, tr, &core.Options{Tables: tables})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng
}

// deadlineCtx ends a little before the test's deadline, so that a wait that
// never ends fails the test with a message instead of the binary's panic.
func deadlineCtx(t *testing.T) context.Context {
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-5*time.Second))
		t.Cleanup(cancel)
	}
	return ctx
}

// waitEvent reads sub until an event satisfies ok; the test's deadline
// bounds it.
func waitEvent(t *testing.T, ctx context.Context, sub *core.Subscription, what string, ok func(core.Event) bool) {
	t.Helper()
	for {
		select {
		case ev, open := <-sub.C:
			if !open {
				t.Fatalf("event stream closed waiting for %s", what)
			}
			if ok(ev) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// TestTwoInstancesFanOutThroughListenNotify: two authority instances share
// one database. Replica A pushes through instance 1; replica B, running in
// realtime against instance 2 only, hears of the change through
// LISTEN/NOTIFY (instance 2 never saw the push) and pulls it.
func TestTwoInstancesFanOutThroughListenNotify(t *testing.T) {
	t.Parallel()
	fanOutAcrossInstances(t, nil)
}

// fanOutAcrossInstances: two authority instances, each over a store opened
// with popts, share one database. Replica A pushes through instance 1;
// replica B, running in realtime against instance 2 only, hears of the
// change through the stores' notices (instance 2 never saw the push) and
// pulls it.
func fanOutAcrossInstances(t *testing.T, popts *postgres.Options) {
	dsn := pgtest.New(t)
	notes := core.Documents("note")
	opts := server.Options{Tables: []core.Table{notes}}
	one, two := newInstanceOpts(t, dsn, popts, opts), newInstanceOpts(t, dsn, popts, opts)
	a := newReplica(t, "a", one, notes)
	b := newReplica(t, "b", two, notes)

	ctx := deadlineCtx(t)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	sub := b.Subscribe(256)
	defer sub.Close()
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx, core.Realtime()) }()
	// Run pulls once when its stream is up; what comes later arrives
	// through a notice alone.
	waitEvent(t, ctx, sub, "B's first sync", func(ev core.Event) bool { _, ok := ev.(core.SyncCompleted); return ok })

	if err := core.DocsFor(a, notes).Put(ctx, "n1", map[string]any{"title": "from A"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ctx, sub, "B pulling A's note", func(ev core.Event) bool {
		p, ok := ev.(core.PagePulled)
		return ok && p.Kind == "note" && p.Upserts == 1
	})
	rec, err := b.Get(ctx, "note", "n1")
	if err != nil {
		t.Fatal(err)
	}
	m, err := rec.Fields()
	if err != nil {
		t.Fatal(err)
	}
	if m["title"] != "from A" {
		t.Fatalf("B has %v, want A's note", m)
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}
