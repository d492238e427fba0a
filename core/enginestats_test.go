package core_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// TestEngineStats checks a replica's figures after scripted syncs: an op
// applied, a conflict resolved, an op rejected for good (dead), the pulled
// records, the outbox and the lag measured by the shared clock.
func TestEngineStats(t *testing.T) {
	ctx := context.Background()
	clock := core.NewManualClock(t0)
	svc := newAuthority(t, &server.Options{
		Clock: clock,
		Validate: func(ctx context.Context, p core.Principal, op core.Op, cur *core.Record) error {
			if op.ID == "bad" {
				return fmt.Errorf("%w: no bad ids", core.ErrRejected)
			}
			return nil
		},
	})
	a := newReplica(t, svc, &core.Options{Clock: clock})
	b := newReplicaOn(t, openStore(t, "b.db"), svc, &core.Options{Clock: clock})

	if err := a.notes.Put(ctx, "n1", map[string]any{"t": "a"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	if err := b.notes.Put(ctx, "n1", map[string]any{"t": "b"}); err != nil { // a create over a row: conflict
		t.Fatal(err)
	}
	if err := b.notes.Put(ctx, "bad", map[string]any{"t": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := b.notes.Put(ctx, "n2", map[string]any{"t": "y"}); err != nil {
		t.Fatal(err)
	}
	st0, err := b.eng.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := outbox(st0, "note"); n != 3 {
		t.Fatalf("outbox of b before its sync: %d ops, want 3 (%+v)", n, st0.Outbox)
	}
	clock.Advance(1500 * time.Millisecond)
	if _, err := b.eng.Sync(ctx); err != nil {
		t.Logf("sync of b: %v", err)
	}

	st, err := b.eng.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ks := st.Kinds["note"]
	if ks.Conflicts != 1 || ks.Resolved != 1 {
		t.Errorf("b conflicts %d resolved %d, want 1 and 1", ks.Conflicts, ks.Resolved)
	}
	if ks.Failed != 1 || ks.Dead != 1 {
		t.Errorf("b failed %d dead %d, want 1 and 1", ks.Failed, ks.Dead)
	}
	// n2, then the resolution of n1 (AutoPreserve pushes a merge).
	if ks.Pushed != 2 {
		t.Errorf("b pushed %d, want 2", ks.Pushed)
	}
	if st.Syncs != 1 || st.LastSync.IsZero() {
		t.Errorf("b syncs %d, last %v", st.Syncs, st.LastSync)
	}
	if !slices.Equal(st.Outbox, []core.OpCount{{Kind: "note", State: core.StateDead, Count: 1}}) {
		t.Errorf("outbox of b after its sync: %+v, want the dead op only", st.Outbox)
	}
	if _, ok := st.Kinds["todo"]; !ok {
		t.Error("a table without traffic has no entry")
	}

	// a pulls b's writes 1.5 s after they were committed.
	clock.Advance(1500 * time.Millisecond)
	mustSync(t, a)
	sa, err := a.eng.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sa.Kinds["note"].Pushed != 1 || sa.Syncs != 2 || sa.FailedSyncs != 0 || sa.LastSuccess != sa.LastSync {
		t.Errorf("a: %+v", sa)
	}
	if sa.Kinds["note"].Pulled < 2 {
		t.Errorf("a pulled %d notes, want at least 2 (n1 merged, n2)", sa.Kinds["note"].Pulled)
	}
	// The authority stamps the ops of one batch a microsecond apart.
	if sa.Lag > 1500*time.Millisecond || sa.Lag < 1499*time.Millisecond {
		t.Errorf("a lag %v, want 1.5s (less the stamps' microseconds)", sa.Lag)
	}
}

func outbox(st core.EngineStats, kind string) int {
	n := 0
	for _, c := range st.Outbox {
		if c.Kind == kind {
			n += c.Count
		}
	}
	return n
}

// spanRecorder is a core.Tracer that records the spans' names and parents.
type spanRecorder struct {
	mu    sync.Mutex
	spans []string // "parent>name" in start order
	ended int
}

type spanKey struct{}

func (r *spanRecorder) StartSpan(ctx context.Context, name string, attrs ...core.Attr) (context.Context, func(error)) {
	parent, _ := ctx.Value(spanKey{}).(string)
	desc := name
	for _, a := range attrs {
		if a.IsInt {
			desc += fmt.Sprintf(" %s=%d", a.Key, a.Int)
		} else {
			desc += fmt.Sprintf(" %s=%s", a.Key, a.Str)
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, parent+">"+desc)
	r.mu.Unlock()
	return context.WithValue(ctx, spanKey{}, name), func(error) {
		r.mu.Lock()
		r.ended++
		r.mu.Unlock()
	}
}

// TestEngineSpans checks the engine's hook points: a sync span with the
// push batch, the resolution (and its push) and a pull page per kind under
// it, every span ended.
func TestEngineSpans(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil)
	a := newReplica(t, svc, nil)
	rec := &spanRecorder{}
	b := newReplicaOn(t, openStore(t, "b.db"), svc, &core.Options{Tracer: rec, Tables: []core.Table{notes}})
	if err := a.notes.Put(ctx, "n1", map[string]any{"t": "a"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	if err := b.notes.Put(ctx, "n1", map[string]any{"t": "b"}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	want := []string{
		">offsync.sync",
		"offsync.sync>offsync.push offsync.ops=1",
		"offsync.sync>offsync.resolve offsync.conflicts=1",
		"offsync.resolve>offsync.push offsync.ops=1",
		"offsync.sync>offsync.pull offsync.kind=note",
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	got := slices.Clone(rec.spans)
	if !slices.Equal(got, want) {
		t.Fatalf("spans:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rec.ended != len(rec.spans) {
		t.Fatalf("%d spans ended of %d", rec.ended, len(rec.spans))
	}
}

// TestStartSpanNilTracer checks that the hooks cost no allocation without a
// tracer.
func TestStartSpanNilTracer(t *testing.T) {
	ctx := context.Background()
	n := testing.AllocsPerRun(100, func() {
		c, end := core.StartSpan(ctx, nil, core.SpanPush, core.IntAttr(core.AttrOps, 3), core.StringAttr(core.AttrKind, "note"))
		end(nil)
		_ = c
	})
	if n != 0 {
		t.Fatalf("%v allocations per span without a tracer", n)
	}
}
