package core_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

func TestSyncKindFilters(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil)
	w := &wire{inner: svc}
	r := newReplica(t, w, nil)
	_ = r.notes.Put(ctx, "n", map[string]any{"v": 1})
	_ = r.projs.Put(ctx, "p", map[string]any{"v": 1})

	mustSync(t, r, core.PushKinds("project"), core.PullKinds("note"))
	if _, ok := authGet(t, svc, "note", "n"); ok {
		t.Fatal("pushed a kind outside PushKinds")
	}
	if _, ok := authGet(t, svc, "project", "p"); !ok {
		t.Fatal("PushKinds kind not pushed")
	}
	if !slices.Equal(w.pulls, []string{"note"}) {
		t.Fatalf("pulled %v", w.pulls)
	}
	w.reset()
	mustSync(t, r, core.Kinds("note"))
	if _, ok := authGet(t, svc, "note", "n"); !ok || !slices.Equal(w.pulls, []string{"note"}) {
		t.Fatalf("Kinds(note): pulls %v", w.pulls)
	}
	if _, err := r.eng.Sync(ctx, core.Kinds("nope")); !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("unknown kind: %v", err)
	}
}

// ghost puts a row in the replica that the authority never had, as a row
// whose tombstone the authority has since collected would be.
func ghost(t *testing.T, r *replica) {
	t.Helper()
	err := r.store.Update(context.Background(), func(ctx context.Context, tx core.Tx) error {
		return tx.Put(ctx, core.Record{Kind: "note", ID: "ghost", UpdatedAt: t0, Data: []byte(`{"v":"ghost"}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func events(sub *core.Subscription) []core.Event {
	var out []core.Event
	for {
		select {
		case ev := <-sub.C:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func resyncs(evs []core.Event) []core.ResyncStarted {
	var out []core.ResyncStarted
	for _, ev := range evs {
		if r, ok := ev.(core.ResyncStarted); ok {
			out = append(out, r)
		}
	}
	return out
}

func TestResyncClearsRowsButKeepsPendingOnes(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil)
	other := newReplica(t, svc, nil)
	for i := range 5 {
		_ = other.notes.Put(ctx, fmt.Sprintf("n%d", i), map[string]any{"i": i})
	}
	mustSync(t, other)
	r := newReplica(t, svc, nil)
	mustSync(t, r)
	ghost(t, r)
	_ = r.notes.Put(ctx, "mine", map[string]any{"v": "pending"})
	w := &wire{inner: svc}
	_ = w
	sub := r.eng.Subscribe(64)
	if _, err := r.eng.Resync(ctx, []string{"note"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Get(ctx, "note", "ghost"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("ghost survived a clearing resync: %v", err)
	}
	rows, _ := r.eng.List(ctx, "note", core.ListOptions{})
	if len(rows) != 6 {
		t.Fatalf("%d rows after resync, want the 5 pulled + the pushed one", len(rows))
	}
	rs := resyncs(events(sub))
	if len(rs) != 1 || rs[0].Kind != "note" || !rs[0].ClearData || rs[0].Reason != "requested" {
		t.Fatalf("resync events %+v", rs)
	}
}

func TestResetRequiredForcesAClearingResync(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil)
	other := newReplica(t, svc, nil)
	_ = other.notes.Put(ctx, "a", map[string]any{"v": 1})
	mustSync(t, other)
	r := newReplicaOn(t, openStore(t, "r.db"), &resetOnce{Transport: svc}, nil)
	mustSync(t, r)
	ghost(t, r)
	_ = other.notes.Put(ctx, "b", map[string]any{"v": 2})
	mustSync(t, other)
	sub := r.eng.Subscribe(64)
	mustSync(t, r)
	if _, err := r.eng.Get(ctx, "note", "ghost"); !errors.Is(err, core.ErrNotFound) {
		t.Fatal("reset_required did not clear the rows the authority forgot")
	}
	if _, err := r.eng.Get(ctx, "note", "b"); err != nil {
		t.Fatal(err)
	}
	rs := resyncs(events(sub))
	if len(rs) != 1 || rs[0].Reason != "reset_required" {
		t.Fatalf("resync events %+v", rs)
	}
}

// resetOnce answers reset_required to the first pull of "note" that resumes
// from a cursor after the first sync.
type resetOnce struct {
	core.Transport
	done atomic.Bool
}

func (r *resetOnce) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	if req.Kind == "note" && !req.After.IsZero() && req.PageToken == "" && !r.done.Load() {
		r.done.Store(true)
		return core.Page{}, fmt.Errorf("test: %w", core.ErrResetRequired)
	}
	return r.Transport.Pull(ctx, req)
}

func TestResyncResumesAfterAnInterruption(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil)
	other := newReplica(t, svc, nil)
	for i := range 9 {
		_ = other.notes.Put(ctx, fmt.Sprintf("n%d", i), map[string]any{"i": i})
	}
	mustSync(t, other)
	st := openStore(t, "r.db")
	crashAt := 0
	hits := 0
	r := newReplicaOn(t, st, svc, &core.Options{PageSize: 3, Checkpoint: func(p string) {
		if p == "mid_page_apply" {
			if hits++; hits == crashAt {
				panic(crash{})
			}
		}
	}})
	mustSync(t, r)
	crashAt = hits + 2 // die in the second page of the resync
	func() {
		defer func() { _ = recover() }()
		_, _ = r.eng.Resync(ctx, []string{"note"}, false)
	}()
	sub := r.eng.Subscribe(64)
	mustSync(t, r)
	rs := resyncs(events(sub))
	if len(rs) != 1 || !rs[0].Resumed {
		t.Fatalf("resync events after the interruption %+v", rs)
	}
	mustSync(t, r)
	if rs := resyncs(events(sub)); len(rs) != 0 {
		t.Fatalf("the resync did not finish: %+v", rs)
	}
	if rows, _ := r.eng.List(ctx, "note", core.ListOptions{}); len(rows) != 9 {
		t.Fatalf("%d rows", len(rows))
	}
}

func TestScheduledResync(t *testing.T) {
	svc := newAuthority(t, nil)
	clock := core.NewManualClock(t0)
	r := newReplica(t, svc, &core.Options{Clock: clock, ResyncInterval: time.Hour})
	sub := r.eng.Subscribe(64)
	mustSync(t, r)
	clock.Advance(30 * time.Minute)
	mustSync(t, r)
	if rs := resyncs(events(sub)); len(rs) != 0 {
		t.Fatalf("resync before the interval: %+v", rs)
	}
	clock.Advance(31 * time.Minute)
	mustSync(t, r)
	rs := resyncs(events(sub))
	if len(rs) != 3 || rs[0].Reason != "scheduled" { // one per kind
		t.Fatalf("scheduled resyncs %+v", rs)
	}
}

func TestSlowSubscriberNeverBlocksSync(t *testing.T) {
	ctx := context.Background()
	r := newReplica(t, newAuthority(t, nil), nil)
	slow := r.eng.Subscribe(1) // never read
	fast := r.eng.Subscribe(1024)
	for i := range 20 {
		_ = r.notes.Put(ctx, fmt.Sprintf("n%d", i), map[string]any{"i": i})
	}
	mustSync(t, r)
	if slow.Dropped() == 0 {
		t.Fatal("a full buffer dropped nothing")
	}
	evs := events(fast)
	if _, ok := evs[0].(core.SyncStarted); !ok {
		t.Fatalf("first event %T", evs[0])
	}
	done, ok := evs[len(evs)-1].(core.SyncCompleted)
	if !ok || done.Stats.Pushed != 20 {
		t.Fatalf("last event %#v", evs[len(evs)-1])
	}
	applied := 0
	for _, ev := range evs {
		if _, ok := ev.(core.OpApplied); ok {
			applied++
		}
	}
	if applied != 20 || fast.Dropped() != 0 {
		t.Fatalf("applied events %d, dropped %d", applied, fast.Dropped())
	}
}

// gate blocks pulls of one kind until released.
type gate struct {
	core.Transport
	kind    string
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gate) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	if req.Kind == g.kind {
		g.once.Do(func() { close(g.entered) })
		<-g.release
	}
	return g.Transport.Pull(ctx, req)
}

func TestSingleFlightPerKind(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil)
	g := &gate{Transport: svc, kind: "note", entered: make(chan struct{}), release: make(chan struct{})}
	r := newReplicaOn(t, openStore(t, "r.db"), g, nil)
	_ = r.projs.Put(ctx, "p", map[string]any{"v": 1})

	first := make(chan error, 1)
	go func() { _, err := r.eng.Sync(ctx, core.Kinds("note")); first <- err }()
	<-g.entered
	// Another kind is not held up by the sync of note, and gets its own result.
	st, err := r.eng.Sync(ctx, core.Kinds("project"))
	if err != nil || st.Pushed != 1 {
		t.Fatalf("sync of project while note is busy: %+v %v", st, err)
	}
	// The same kind waits for the running sync, then runs itself.
	second := make(chan core.Stats, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		st, _ := r.eng.Sync(ctx, core.Kinds("note", "project"))
		second <- st
	}()
	<-started
	select {
	case <-second:
		t.Fatal("a second sync of a busy kind did not wait")
	default:
	}
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-second
}

func TestCloseWaitsForARunningSync(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil)
	g := &gate{Transport: svc, kind: "note", entered: make(chan struct{}), release: make(chan struct{})}
	r := newReplicaOn(t, openStore(t, "r.db"), g, nil)
	sub := r.eng.Subscribe(64)
	go func() { _, _ = r.eng.Sync(ctx) }()
	<-g.entered
	closed := make(chan bool)
	go func() {
		_ = r.eng.Close()
		// Sync emits SyncCompleted before it returns: when Close has
		// waited for it, the event is already in the buffer.
		completed := false
		for ev := range sub.C {
			_, ok := ev.(core.SyncCompleted)
			completed = completed || ok
		}
		closed <- completed
	}()
	close(g.release)
	if !<-closed {
		t.Fatal("Close returned before the running sync ended")
	}
	if _, err := r.eng.Sync(ctx); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("sync after close: %v", err)
	}
	if err := r.notes.Put(ctx, "x", map[string]any{}); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// waitFor reads events until one satisfies ok; the test's deadline bounds it.
func waitFor(t *testing.T, sub *core.Subscription, ok func(core.Event) bool) {
	t.Helper()
	for ev := range sub.C {
		if ok(ev) {
			return
		}
	}
	t.Fatal("event stream closed")
}

func TestRunRealtimePullsOnNotice(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := newAuthority(t, nil)
	a := newReplica(t, svc, nil)
	b := newReplica(t, svc, &core.Options{Clock: core.SystemClock})
	sub := b.eng.Subscribe(256)
	done := make(chan error, 1)
	go func() { done <- b.eng.Run(ctx, core.Realtime()) }()
	// Run pulls once when its stream is up; a write after that must arrive
	// through a notice alone.
	waitFor(t, sub, func(ev core.Event) bool { _, ok := ev.(core.SyncCompleted); return ok })
	_ = a.notes.Put(ctx, "live", map[string]any{"v": 1})
	mustSync(t, a)
	waitFor(t, sub, func(ev core.Event) bool {
		p, ok := ev.(core.PagePulled)
		return ok && p.Kind == "note" && p.Upserts == 1
	})
	if _, err := b.eng.Get(ctx, "note", "live"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
}

func TestRunPushOnWriteAndInterval(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := newAuthority(t, nil)
	clock := core.NewManualClock(t0)
	r := newReplica(t, svc, &core.Options{Clock: clock})
	other := newReplica(t, svc, nil)
	sub := r.eng.Subscribe(256)
	done := make(chan error, 1)
	go func() { done <- r.eng.Run(ctx, core.PushOnWrite(time.Second), core.Every(time.Minute)) }()

	clock.BlockUntil(1) // the interval timer
	_ = r.notes.Put(ctx, "w", map[string]any{"v": 1})
	clock.BlockUntil(2) // the debounce timer, armed by the write
	clock.Advance(time.Second)
	waitFor(t, sub, func(ev core.Event) bool { a, ok := ev.(core.OpApplied); return ok && a.Op.ID == "w" })
	_ = other.notes.Put(ctx, "from-other", map[string]any{"v": 1})
	mustSync(t, other)
	clock.BlockUntil(1)
	clock.Advance(time.Minute)
	waitFor(t, sub, func(ev core.Event) bool {
		p, ok := ev.(core.PagePulled)
		return ok && p.Kind == "note" && p.Upserts >= 1
	})
	if _, err := r.eng.Get(ctx, "note", "from-other"); err != nil {
		t.Fatal(err)
	}
	_ = r.eng.Close()
	if err := <-done; !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Run after Close returned %v", err)
	}
}
