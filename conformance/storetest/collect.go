package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

func tombstoneTx(t testing.TB, tx core.Tx) core.TombstoneTx {
	t.Helper()
	tt, ok := tx.(core.TombstoneTx)
	if !ok {
		t.Fatalf("the store's transactions are no core.TombstoneTx: an authority over it cannot collect tombstones")
	}
	return tt
}

// TestCollectTombstones: collection removes the oldest tombstones before the
// cutoff, a bounded batch at a time, never a live row or a newer tombstone,
// and moves the kind's horizon to the newest version removed; the horizon
// of another kind stays zero.
func TestCollectTombstones(t *testing.T, h Harness) {
	s := open(t, h)
	for _, kind := range []string{ItemKind, NoteKind} {
		t.Run(kind, func(t *testing.T) {
			mk := func(id string, us int64, deleted bool) core.Record {
				r := item(t, id, "t", "o", at(us))
				if kind == NoteKind {
					r = core.Record{Kind: NoteKind, ID: id, UpdatedAt: at(us), Data: json.RawMessage(`{"x":1}`)}
				}
				if deleted {
					r.DeletedAt = at(us)
				}
				return r
			}
			update(t, s, func(ctx context.Context, tx core.Tx) error {
				for _, r := range []core.Record{mk("d1", 1, true), mk("l2", 2, false), mk("d3", 3, true),
					mk("l4", 4, false), mk("d5", 5, true), mk("d10", 10, true)} {
					if err := tx.Put(ctx, r); err != nil {
						return err
					}
				}
				return nil
			})
			collect := func(want int, wantH time.Time) {
				t.Helper()
				update(t, s, func(ctx context.Context, tx core.Tx) error {
					n, hz, err := tombstoneTx(t, tx).CollectTombstones(ctx, kind, at(6), 2)
					if err != nil {
						return err
					}
					if n != want || !hz.Equal(wantH) {
						return fmt.Errorf("collected %d, horizon %v; want %d, %v", n, hz, want, wantH)
					}
					return nil
				})
			}
			view(t, s, func(ctx context.Context, tx core.Tx) error {
				if o, err := tombstoneTx(t, tx).OldestTombstone(ctx, kind); err != nil || !o.Equal(at(1)) {
					return fmt.Errorf("oldest tombstone %v (%v), want %v", o, err, at(1))
				}
				return nil
			})
			collect(2, at(3))
			collect(1, at(5))
			collect(0, at(5))
			view(t, s, func(ctx context.Context, tx core.Tx) error {
				for _, id := range []string{"d1", "d3", "d5"} {
					if _, err := tx.Get(ctx, kind, id); !errors.Is(err, core.ErrNotFound) {
						return fmt.Errorf("tombstone %s older than the cutoff is still there (%v)", id, err)
					}
				}
				for _, id := range []string{"l2", "l4", "d10"} {
					if _, err := tx.Get(ctx, kind, id); err != nil {
						return fmt.Errorf("row %s (live, or a tombstone newer than the cutoff) was removed: %v", id, err)
					}
				}
				tt := tombstoneTx(t, tx)
				if hz, err := tt.Horizon(ctx, kind); err != nil || !hz.Equal(at(5)) {
					return fmt.Errorf("horizon %v, %v; want %v", hz, err, at(5))
				}
				if n, err := tt.CountTombstones(ctx, kind); err != nil || n != 1 {
					return fmt.Errorf("%d tombstones left (%v), want 1", n, err)
				}
				if o, err := tt.OldestTombstone(ctx, kind); err != nil || !o.Equal(at(10)) {
					return fmt.Errorf("oldest tombstone %v (%v), want %v", o, err, at(10))
				}
				return nil
			})
		})
	}
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		if _, err := tombstoneTx(t, tx).Horizon(ctx, "st_other_kind"); err != nil {
			return err
		}
		return nil
	})
	// A rolled-back collection removes nothing and keeps the horizon.
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		return tx.Put(ctx, core.Record{Kind: NoteKind, ID: "d7", UpdatedAt: at(7), DeletedAt: at(7), Data: json.RawMessage(`{}`)})
	})
	boom := errors.New("boom")
	if err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		if n, _, err := tombstoneTx(t, tx).CollectTombstones(ctx, NoteKind, at(8), 10); err != nil || n != 1 {
			t.Errorf("collect d7: %d, %v", n, err)
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		if _, err := tx.Get(ctx, NoteKind, "d7"); err != nil {
			return fmt.Errorf("rolled-back collection removed d7: %v", err)
		}
		if hz, _ := tombstoneTx(t, tx).Horizon(ctx, NoteKind); !hz.Equal(at(5)) {
			return fmt.Errorf("rolled-back collection moved the horizon to %v", hz)
		}
		return nil
	})
}

// authorityOver returns a Service over s with a tombstone retention of a
// day, on a manual clock.
func authorityOver(t *testing.T, s core.Store, clock core.Clock, hooks *server.Hooks, batch int) *server.Service {
	t.Helper()
	svc, err := server.New(t.Context(), s, &server.Options{Tables: Tables(), Clock: clock,
		TombstoneRetention: 24 * time.Hour, TombstoneBatch: batch, Hooks: hooks})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}

type replicaT struct {
	eng  *core.Engine
	docs *core.DocWriter
	st   core.Store
}

func newReplicaT(t *testing.T, st core.Store, tr core.Transport, opts core.Options) *replicaT {
	t.Helper()
	opts.Tables = []core.Table{Notes}
	eng, err := core.NewEngine(t.Context(), st, tr, &opts)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return &replicaT{eng: eng, docs: core.DocsFor(eng, Notes), st: st}
}

func (r *replicaT) sync(t *testing.T) {
	t.Helper()
	if _, err := r.eng.Sync(t.Context()); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// liveRows lists the live rows of kind in st: id → updated_at and data.
func liveRows(t *testing.T, st core.Store, kind string) map[string]string {
	t.Helper()
	out := map[string]string{}
	view(t, st, func(ctx context.Context, tx core.Tx) error {
		recs, err := tx.List(ctx, kind, core.ListOptions{})
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.DeletedAt.IsZero() {
				out[r.ID] = core.FormatTime(r.UpdatedAt) + " " + string(r.Data)
			}
		}
		return nil
	})
	return out
}

func sameRows(t *testing.T, who string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s has %d live rows, the authority %d:\n got %v\nwant %v", who, len(got), len(want), got, want)
		return
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("%s row %s = %q, the authority's %q", who, id, got[id], w)
		}
	}
}

// TestCollectResync, end to end over an authority on this store: a replica
// offline past the tombstone retention gets reset_required, resyncs (its
// first attempt interrupted mid-walk and resumed), and ends equal to the
// authority with its own pending edits kept and pushed; a replica that
// synced within the retention is served normally and saw every delete.
func TestCollectResync(t *testing.T, h Harness) {
	ctx := t.Context()
	clock := core.NewManualClock(base)
	auth := open(t, h)
	svc := authorityOver(t, auth, clock, nil, 2)
	a := newReplicaT(t, open(t, h), svc, core.Options{})
	for i := range 8 {
		if err := a.docs.Put(ctx, fmt.Sprintf("n%d", i), map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	a.sync(t)
	var cut atomic.Bool
	bctx, bcancel := context.WithCancel(ctx)
	hits := 0
	bst := open(t, h)
	b := newReplicaT(t, bst, svc, core.Options{PageSize: 2, Checkpoint: func(p string) {
		if p == "mid_page_apply" && cut.Load() {
			if hits++; hits == 2 {
				bcancel() // the resync dies in its second page
			}
		}
	}})
	b.sync(t)
	c := newReplicaT(t, open(t, h), svc, core.Options{PageSize: 3})
	c.sync(t)

	// B goes offline with edits of its own; A deletes three notes.
	if err := b.docs.Put(ctx, "n1", map[string]any{"i": 1, "by": "b"}); err != nil {
		t.Fatal(err)
	}
	if err := b.docs.Put(ctx, "b-new", map[string]any{"by": "b"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"n2", "n3", "n4"} {
		if err := a.docs.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	a.sync(t)
	clock.Advance(time.Hour)
	c.sync(t) // within the retention: every delete arrives
	for _, id := range []string{"n2", "n3", "n4"} {
		if r, err := c.eng.Get(ctx, NoteKind, id); err == nil && r.DeletedAt.IsZero() {
			t.Fatalf("replica C within the retention did not see the delete of %s", id)
		}
	}
	clock.Advance(48 * time.Hour)
	// The background pass may run as the clock moves; Collect finishes it.
	if _, err := svc.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := svc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range st {
		if k.Kind == NoteKind && (k.Tombstones != 0 || k.Horizon.IsZero()) {
			t.Fatalf("status after collection %+v, want no tombstone left and a horizon", k)
		}
	}
	// B's old cursor is past the horizon; a zero cursor is not.
	bc, err := b.eng.Cursor(ctx, NoteKind)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: NoteKind, After: bc}); !errors.Is(err, core.ErrResetRequired) {
		t.Fatalf("pull after a cursor older than the horizon: %v, want ErrResetRequired", err)
	}
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: NoteKind}); err != nil {
		t.Fatalf("pull from the start: %v", err)
	}
	// C synced within the retention: its cursor is at or after the horizon.
	c.sync(t)
	sameRows(t, "replica C", liveRows(t, c.st, NoteKind), liveRows(t, auth, NoteKind))

	// B comes back: its edits are pushed, the pull is reset, and the resync
	// is cut in its second page, then resumed by the next sync.
	cut.Store(true)
	if _, err := b.eng.Sync(bctx); err != nil {
		t.Logf("the interrupted sync: %v", err)
	}
	cut.Store(false)
	if hits < 2 {
		t.Fatalf("the resync was not interrupted (%d pages)", hits)
	}
	b.sync(t)
	b.sync(t)
	want := liveRows(t, auth, NoteKind)
	sameRows(t, "replica B", liveRows(t, bst, NoteKind), want)
	if _, ok := want["b-new"]; !ok {
		t.Fatalf("B's offline create did not reach the authority: %v", want)
	}
	if r, err := b.eng.Get(ctx, NoteKind, "n1"); err != nil || !jsonHas(r.Data, "by") {
		t.Fatalf("B's offline edit of n1 was lost: %s %v", r.Data, err)
	}
	for _, id := range []string{"n2", "n3", "n4"} {
		if _, err := b.eng.Get(ctx, NoteKind, id); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("replica B still has %s, which the authority deleted and collected (%v)", id, err)
		}
	}
	if n, err := b.eng.Pending(ctx); err != nil || len(n) != 0 {
		t.Fatalf("B's outbox after the resync: %+v %v", n, err)
	}
}

func jsonHas(b json.RawMessage, field string) bool {
	var m map[string]any
	return json.Unmarshal(b, &m) == nil && m[field] != nil
}

// TestCollectWhilePushing collects 100,000 tombstones while pushes of the
// same kind go on: every collection transaction removes at most one batch
// (the bound a push may wait for, in rows), pushes complete between
// batches, and every push is applied.
func TestCollectWhilePushing(t *testing.T, h Harness) {
	const total, batch = 100_000, 1000
	ctx := t.Context()
	s := open(t, h)
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		recs := make([]core.Record, 0, 1000)
		flush := func() error {
			if bt, ok := tx.(core.BatchTx); ok {
				err := bt.PutMany(ctx, NoteKind, recs)
				recs = recs[:0]
				return err
			}
			for _, r := range recs {
				if err := tx.Put(ctx, r); err != nil {
					return err
				}
			}
			recs = recs[:0]
			return nil
		}
		for i := range total {
			recs = append(recs, core.Record{Kind: NoteKind, ID: fmt.Sprintf("dead%06d", i), UpdatedAt: at(int64(i + 1)),
				DeletedAt: at(int64(i + 1)), Data: json.RawMessage(`{}`)})
			if len(recs) == cap(recs) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return flush()
	})
	var mu sync.Mutex
	var sizes []int
	var pushesDone atomic.Int64
	var pushedBetween []int64 // pushes completed before each batch
	hooks := &server.Hooks{AfterCollect: func(kind string, n int) {
		mu.Lock()
		sizes = append(sizes, n)
		pushedBetween = append(pushedBetween, pushesDone.Load())
		mu.Unlock()
	}}
	clock := core.NewManualClock(base.Add(30 * 24 * time.Hour))
	svc := authorityOver(t, s, clock, hooks, batch)

	stop := make(chan struct{})
	pushErr := make(chan error, 1)
	go func() {
		defer close(pushErr)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			res, err := svc.Push(ctx, []core.Op{{OpID: fmt.Sprintf("op-%d", i), Kind: NoteKind, ID: fmt.Sprintf("live%d", i),
				Type: core.OpUpsert, Payload: json.RawMessage(`{"i":1}`)}})
			if err != nil || res[0].Status != core.StatusApplied {
				pushErr <- fmt.Errorf("push %d: %+v %v", i, res, err)
				return
			}
			pushesDone.Add(1)
		}
	}()
	_, err := svc.Collect(ctx) // New's background pass may have begun: they take turns
	close(stop)
	if perr := <-pushErr; perr != nil {
		t.Fatal(perr)
	}
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	removed := 0
	for _, n := range sizes {
		removed += n
	}
	mu.Unlock()
	if removed != total {
		t.Fatalf("collected %d tombstones, want %d", removed, total)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) < total/batch {
		t.Fatalf("%d collection transactions for %d tombstones in batches of %d", len(sizes), total, batch)
	}
	for i, n := range sizes {
		if n > batch {
			t.Fatalf("collection transaction %d removed %d rows, more than one batch (%d): a push could wait for it", i, n, batch)
		}
	}
	interleaved := 0
	for i := 1; i < len(pushedBetween); i++ {
		if pushedBetween[i] > pushedBetween[i-1] {
			interleaved++
		}
	}
	if interleaved == 0 {
		t.Fatalf("no push completed between two of the %d collection transactions: pushes waited for the whole collection", len(sizes))
	}
	t.Logf("%d tombstones in %d transactions (at most %d rows each); pushes completed between %d pairs of batches, %d pushes in all",
		total, len(sizes), batch, interleaved, pushesDone.Load())
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		n, err := tombstoneTx(t, tx).CountTombstones(ctx, NoteKind)
		if err != nil || n != 0 {
			return fmt.Errorf("%d tombstones left (%v)", n, err)
		}
		return nil
	})
}
