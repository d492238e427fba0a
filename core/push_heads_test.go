package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// headReads records what every outbox listing of a push pass (an Ops call
// that is not for one record) asked for and returned.
type headReads struct {
	mu     sync.Mutex
	reads  []int // ops returned, per listing
	pushed bool  // a push reached the wire
	before int   // ops listed before the first push
	// ignoreAfterSeq makes the store list from the start of the outbox
	// whatever AfterSeq says (a store written before the field).
	ignoreAfterSeq bool
}

type headReadsTx struct {
	core.Tx
	h *headReads
}

// Ops lists through the real store and records listings of the outbox.
func (t headReadsTx) Ops(ctx context.Context, f core.OpFilter) ([]core.Op, error) {
	if f.ID != "" {
		return t.Tx.Ops(ctx, f)
	}
	if t.h.ignoreAfterSeq {
		f.AfterSeq = 0
	}
	ops, err := t.Tx.Ops(ctx, f)
	t.h.mu.Lock()
	defer t.h.mu.Unlock()
	t.h.reads = append(t.h.reads, len(ops))
	if !t.h.pushed {
		t.h.before += len(ops)
	}
	return ops, err
}

func (h *headReads) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reads, h.pushed, h.before = nil, false, 0
}

func (h *headReads) snapshot() (reads []int, before int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.reads...), h.before
}

// headsReplica is a replica whose outbox listings go through h, pushing
// over w in batches of batch.
func headsReplica(t *testing.T, w *wire, h *headReads, batch int) *replica {
	t.Helper()
	st := wrapStore{Store: openStore(t, "replica.db"), wrap: func(tx core.Tx) core.Tx {
		if bt, ok := tx.(core.BatchTx); ok {
			return struct {
				headReadsTx
				core.BatchTx
			}{headReadsTx{tx, h}, bt}
		}
		return headReadsTx{tx, h}
	}}
	w.onPush = func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
		h.mu.Lock()
		h.pushed = true
		h.mu.Unlock()
		return inner.Push(ctx, ops)
	}
	return newReplicaOn(t, st, w, &core.Options{BatchSize: batch})
}

// TestPushReadsTheOutboxAPageAtATime: the first batch leaves after one
// batch's worth of the outbox is read, not the whole outbox, and no listing
// holds more than eight batches of it; every op is still pushed once, in
// one Sync. (Before, the heads of a pass were read in one listing of the
// whole outbox: 1,000 ops before the first push.)
func TestPushReadsTheOutboxAPageAtATime(t *testing.T) {
	svc := newAuthority(t, nil)
	w := &wire{inner: svc}
	h := &headReads{}
	r := headsReplica(t, w, h, 50)
	writeNotes(t, r, 0, 1000, "a")
	h.reset()
	st := mustSync(t, r, core.PullKinds())
	if st.Pushed != 1000 {
		t.Fatalf("pushed %d, want 1000", st.Pushed)
	}
	reads, before := h.snapshot()
	if before > 50 {
		t.Errorf("%d ops listed before the first push, want at most one batch (50); listings %v", before, reads)
	}
	for _, n := range reads {
		if n > 8*50 {
			t.Errorf("a listing returned %d ops, want at most 400; listings %v", n, reads)
		}
	}
	checkConverged(t, r, svc, w, 1000)
}

// TestPushOnAStoreThatIgnoresAfterSeq: a store that lists from the start of
// the outbox whatever AfterSeq asks (one written before the field) still
// has every op pushed in one Sync, each once — here with every op refused
// for good, so that none leaves the outbox and a paged read from the start
// would see the first pages only, or read them forever.
func TestPushOnAStoreThatIgnoresAfterSeq(t *testing.T) {
	svc := newAuthority(t, nil)
	w := &wire{inner: svc}
	h := &headReads{ignoreAfterSeq: true}
	r := headsReplica(t, w, h, 50)
	w.onPush = func(ctx context.Context, ops []core.Op, _ core.Transport) ([]core.PushResult, error) {
		res := make([]core.PushResult, len(ops))
		for i, op := range ops {
			res[i] = core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Reason: "refused", Permanent: true}
		}
		return res, nil
	}
	writeNotes(t, r, 0, 1000, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a loop fails instead of hanging
	defer cancel()
	if _, err := r.eng.Sync(ctx, core.PullKinds()); err != nil && ctx.Err() != nil {
		t.Fatalf("sync: %v", err)
	}
	counts := w.pushCount()
	if len(counts) != 1000 {
		t.Errorf("%d ops pushed, want all 1000", len(counts))
	}
	for id, c := range counts {
		if c != 1 {
			t.Errorf("op %s pushed %d times", id, c)
		}
	}
}

// TestPushLooksAgainOnlyWhenItMust: a push whose every op was applied, with
// no later ops and no local write meanwhile, reads the outbox to its end
// once — no second pass; a record's later op makes a second pass that
// pushes it in the same Sync.
func TestPushLooksAgainOnlyWhenItMust(t *testing.T) {
	svc := newAuthority(t, nil)
	w := &wire{inner: svc}
	h := &headReads{}
	r := headsReplica(t, w, h, 50)
	writeNotes(t, r, 0, 120, "a")
	h.reset()
	if st := mustSync(t, r, core.PullKinds()); st.Pushed != 120 {
		t.Fatalf("pushed %d, want 120", st.Pushed)
	}
	reads, _ := h.snapshot()
	// 50 (the first batch), then the other 70 in a listing of up to 400.
	if len(reads) != 2 || reads[0] != 50 || reads[1] != 70 {
		t.Errorf("listings %v, want [50 70]: one read of the outbox to its end", reads)
	}

	// Two writes of each of 10 records while nothing is in flight coalesce
	// into one op each; a write behind an op in flight is a later op.
	writeNotes(t, r, 0, 10, "b")
	var once sync.Once
	w.onPush = func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
		once.Do(func() { writeNotes(t, r, 0, 10, "c") })
		return inner.Push(ctx, ops)
	}
	if st := mustSync(t, r, core.PullKinds()); st.Pushed != 20 {
		t.Fatalf("pushed %d, want 20: the ops written during the push in the same Sync", st.Pushed)
	}
	checkConverged(t, r, svc, w, 120)
}
