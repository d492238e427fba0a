package transporttest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// TestConnCutAfterPush: the client's connection is cut after a push reached
// the authority and before its answer came back (the cut is armed by the
// authority as it applies the push, and happens at the client's next read
// on the connection, which is the answer). The replica must re-send the ops
// on a new connection with the same op IDs and get the idempotent answers:
// each write is applied once, with no conflict, and the replicas converge.
func TestConnCutAfterPush(t *testing.T, h Harness) {
	if !h.Features().Conn {
		t.Skip("Features.Conn not claimed")
	}
	conns := faults.NewConns(nil)
	var target atomic.Value // the "w" of the write whose answer is lost
	target.Store("")
	w := newWorld(t, h, modeClean, func(o *server.Options) {
		inner := o.Validate
		o.Validate = func(ctx context.Context, p core.Principal, op core.Op, cur *core.Record) error {
			if want := target.Load().(string); want != "" && logKey(op) == NoteKind+":w:"+want {
				target.Store("")
				conns.CutOnRead()
			}
			return inner(ctx, p, op, cur)
		}
	})
	a := w.replica("a", replicaOptions{wrapConn: conns.Wrap})
	b := w.replica("b", replicaOptions{})
	a.put(t, "c", map[string]any{"w": "a-0"})
	w.sync(t, a)
	if s := conns.Stats(); s.Wrapped == 0 {
		t.Fatal("the client dialed no connection through ClientOptions.WrapConn")
	}

	target.Store("a-1")
	a.put(t, "c", map[string]any{"w": "a-1"})
	a.put(t, "d", map[string]any{"w": "a-2"})
	_, _ = a.eng.Sync(t.Context()) // the push's answer is lost
	if s := conns.Stats(); s.Cuts != 1 {
		t.Fatalf("connections cut: %d, want 1 (the one that carried the push)", s.Cuts)
	}
	// The cut is armed inside the push's transaction; a wire that reads
	// frames while the call runs (HTTP/2) sees it before the commit, and the
	// authority finishes the push after the client has gone. Wait for that
	// commit (bounded), so the re-send below meets a stored answer.
	n := 0
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n = appliedCounts(t, w.store, NoteKind)["w:a-1"]; n != 0 || time.Now().After(deadline) {
			break
		}
	}
	if n != 1 {
		t.Fatalf("write a-1 applied %d times before the answer was lost, want 1 (the cut must follow the commit)", n)
	}
	if a.pending(t) == 0 {
		t.Fatal("replica a has no op pending after its push's answer was lost: it took an answer it never got")
	}

	st := w.sync(t, a) // re-sent on a new connection
	if st.Conflicts != 0 {
		t.Errorf("re-sending the push made %d conflicts: the retry must get the idempotent answer (same op IDs)", st.Conflicts)
	}
	if s := conns.Stats(); s.Wrapped < 2 {
		t.Errorf("connections dialed: %d, want a new one after the cut", s.Wrapped)
	}
	w.checkAppliedOnce(t)
	w.sync(t, b)
	w.converged(t, a, b)
}
