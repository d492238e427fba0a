package core_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// pipeWire is a wire that says it carries depth pushes at once
// (core.Pipeliner) and counts how many are in flight. hold, when set, keeps
// the first push from reaching the authority until want pushes are in
// flight together, or until hold has passed (the negative control's way
// out: without pipelining the second push never comes).
type pipeWire struct {
	*wire
	depth int
	// want pushes are held until that many are in flight together, or
	// until hold has passed (the negative control's way out: without
	// pipelining the second push never comes); then none is held again.
	want int
	hold time.Duration
	// onHeld, when set, runs once the want pushes are in flight, before
	// any of them goes on to the authority.
	onHeld func()

	mu       sync.Mutex
	inflight int
	most     int
	arrived  int
	gate     chan struct{} // closed when pushes stop being held
	opened   bool
}

func newPipeWire(inner core.Transport, depth int) *pipeWire {
	return &pipeWire{wire: &wire{inner: inner}, depth: depth, gate: make(chan struct{})}
}

func (p *pipeWire) PushDepth() int { return p.depth }

// open stops holding pushes; the caller holds mu.
func (p *pipeWire) open() {
	if !p.opened {
		p.opened = true
		close(p.gate)
	}
}

func (p *pipeWire) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	p.mu.Lock()
	p.inflight++
	p.most = max(p.most, p.inflight)
	p.arrived++
	if p.arrived == p.want && !p.opened {
		if p.onHeld != nil {
			p.onHeld()
		}
		p.open()
	}
	p.mu.Unlock()
	if p.want > 0 {
		deadline := time.NewTimer(p.hold)
		select {
		case <-p.gate:
		case <-deadline.C:
			p.mu.Lock()
			p.open()
			p.mu.Unlock()
		}
		deadline.Stop()
	}
	defer func() {
		p.mu.Lock()
		p.inflight--
		p.mu.Unlock()
	}()
	return p.wire.Push(ctx, ops)
}

// mostInFlight is the largest number of pushes seen in flight at once.
func (p *pipeWire) mostInFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.most
}

// bare hides the Pipeliner of a transport: the negative control.
type bare struct{ core.Transport }

func writeNotes(t *testing.T, r *replica, from, n int, tag string) {
	t.Helper()
	ctx := context.Background()
	err := r.eng.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		for i := from; i < from+n; i++ {
			if err := r.notes.PutTx(ctx, tx, fmt.Sprintf("n%03d", i), map[string]any{"i": i, "tag": tag}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkConverged fails unless the outbox is empty and every local note is
// the authority's, and every op was pushed exactly once.
func checkConverged(t *testing.T, r *replica, svc *server.Service, w *wire, n int) {
	t.Helper()
	ctx := context.Background()
	if ops := r.ops(t); len(ops) != 0 {
		t.Fatalf("%d ops left in the outbox: %+v", len(ops), ops[0])
	}
	local, err := r.eng.List(ctx, "note", core.ListOptions{IncludeDeleted: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(local) != n {
		t.Fatalf("%d local notes, want %d", len(local), n)
	}
	for _, l := range local {
		a, ok := authGet(t, svc, "note", l.ID)
		if !ok || string(a.Data) != string(l.Data) || !a.UpdatedAt.Equal(l.UpdatedAt) {
			t.Errorf("%s: local %s @%v, authority %s @%v (found %v)", l.ID, l.Data, l.UpdatedAt, a.Data, a.UpdatedAt, ok)
		}
	}
	for id, c := range w.pushCount() {
		if c != 1 {
			t.Errorf("op %s pushed %d times", id, c)
		}
	}
}

// TestPushPipelinedOnAPipeliner: with a transport that carries three
// pushes at once, the engine has three batches in flight together (the
// first push is held until they are there), and every op is applied once,
// the replica ending equal to the authority. The negative control, the
// same transport without its PushDepth, never has two in flight.
func TestPushPipelinedOnAPipeliner(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pipeline bool
		want     int
	}{{"pipeliner", true, 3}, {"negative control: no Pipeliner", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newAuthority(t, &server.Options{Clock: core.NewManualClock(t0)})
			pw := newPipeWire(svc, 3)
			pw.want = 3
			var tr core.Transport = pw
			if tc.pipeline {
				pw.hold = time.Minute // never reached: the batches come at once
			} else {
				pw.hold = 200 * time.Millisecond
				tr = bare{pw}
			}
			r := newReplica(t, tr, &core.Options{BatchSize: 4})
			writeNotes(t, r, 0, 30, "a")
			st := mustSync(t, r, core.PullKinds())
			if st.Pushed != 30 {
				t.Fatalf("pushed %d, want 30", st.Pushed)
			}
			if got := pw.mostInFlight(); got != tc.want {
				t.Fatalf("at most %d pushes in flight, want %d", got, tc.want)
			}
			checkConverged(t, r, svc, pw.wire, 30)
		})
	}
}

// TestPushPipelinedKeepsRecordOrder: ops written while the first ops of
// their records are in flight (all four batches of them, at once) are
// pushed after those are answered (a later pass of the same Sync), never
// beside them: the authority ends with each record's last write, and every
// op is pushed once.
func TestPushPipelinedKeepsRecordOrder(t *testing.T) {
	svc := newAuthority(t, &server.Options{Clock: core.NewManualClock(t0)})
	pw := newPipeWire(svc, 4)
	pw.want, pw.hold = 4, time.Minute
	var r *replica
	pw.onHeld = func() { writeNotes(t, r, 0, 20, "b") } // second ops of records in flight
	r = newReplica(t, pw, &core.Options{BatchSize: 5})
	writeNotes(t, r, 0, 20, "a")
	st := mustSync(t, r, core.PullKinds())
	if st.Pushed != 40 {
		t.Fatalf("pushed %d, want 40", st.Pushed)
	}
	if got := pw.mostInFlight(); got != 4 {
		t.Fatalf("at most %d pushes in flight, want 4", got)
	}
	checkConverged(t, r, svc, pw.wire, 20)
	for i := range 20 {
		a, _ := authGet(t, svc, "note", fmt.Sprintf("n%03d", i))
		if got := field(t, a, "tag"); got != "b" {
			t.Errorf("n%03d: tag %v at the authority, want the last write's b", i, got)
		}
	}
}

// TestPushPipelinedPauseAppliesBatchesInFlight: when the authority asks the
// first batch to retry later, the batches already sent behind it are
// answered for real, and their answers are applied before Sync returns:
// their ops leave the outbox; the paused ones are pushed at the next Sync.
func TestPushPipelinedPauseAppliesBatchesInFlight(t *testing.T) {
	svc := newAuthority(t, &server.Options{Clock: core.NewManualClock(t0)})
	pw := newPipeWire(svc, 3)
	pw.want, pw.hold = 3, time.Minute
	pw.set(func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
		if ops[0].ID != "n000" { // not the first batch
			return inner.Push(ctx, ops)
		}
		res := make([]core.PushResult, len(ops))
		for i, op := range ops {
			res[i] = core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: "busy"}
		}
		return res, nil
	})
	r := newReplica(t, pw, &core.Options{BatchSize: 4})
	writeNotes(t, r, 0, 12, "a")
	st, _ := r.eng.Sync(context.Background(), core.PullKinds())
	if st.Errors == 0 || st.Stuck != 4 {
		t.Fatalf("stats %+v: the pause is an error, and the paused batch's 4 ops stay", st)
	}
	if st.Pushed != 8 {
		t.Fatalf("pushed %d, want the 8 ops of the two batches behind the paused one", st.Pushed)
	}
	if n := len(r.ops(t)); n != 4 {
		t.Fatalf("%d ops left, want the paused batch's 4", n)
	}
	pw.set(nil)
	pw.wire.reset()
	mustSync(t, r, core.PullKinds())
	checkConverged(t, r, svc, pw.wire, 12)
}
