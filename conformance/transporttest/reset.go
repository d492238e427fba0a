package transporttest

import (
	"errors"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// TestResetRequired: once the authority has collected tombstones, a pull
// from a cursor older than the kind's horizon fails with
// core.ErrResetRequired through the transport (REST 410 reset_required and
// each wire form's equivalent), a pull from the start does not, and a
// replica that was away past the retention resyncs and ends with the
// authority's live rows, the collected delete included.
func TestResetRequired(t *testing.T, h Harness) {
	var clock *core.ManualClock // the current world's authority clock
	opts := func(o *server.Options) {
		clock = core.NewManualClock(t0)
		o.Clock = clock
		o.TombstoneRetention = 24 * time.Hour
	}
	worlds(t, h, opts, func(t *testing.T, w *world) {
		a, b := w.replica("a", replicaOptions{}), w.replica("b", replicaOptions{pageSize: 2})
		for i, id := range []string{"x", "y", "z", "v"} {
			a.put(t, id, map[string]any{"w": writeID("a", i)})
		}
		w.sync(t, a)
		w.sync(t, b)
		a.del(t, "y")
		w.sync(t, a)
		clock.Advance(48 * time.Hour)
		if _, err := w.svc.Collect(t.Context()); err != nil {
			t.Fatalf("collect: %v", err)
		}
		st, err := w.svc.Status(t.Context())
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		for _, k := range st {
			if k.Kind == NoteKind && (k.Tombstones != 0 || k.Horizon.IsZero()) {
				t.Fatalf("the authority after collection: %+v, want no tombstone left and a horizon", k)
			}
		}
		cursor, err := b.eng.Cursor(t.Context(), NoteKind)
		if err != nil {
			t.Fatal(err)
		}
		bare := h.NewClient(t, w.svc, ClientOptions{})
		if _, err := bare.Pull(t.Context(), core.PullRequest{Kind: NoteKind, After: cursor}); !errors.Is(err, core.ErrResetRequired) {
			t.Fatalf("a pull after a cursor older than the collected tombstones: %v, want core.ErrResetRequired (REST 410 reset_required, or the wire form's equivalent)", err)
		}
		if _, err := bare.Pull(t.Context(), core.PullRequest{Kind: NoteKind}); err != nil {
			t.Fatalf("a pull from the start after a collection: %v, want a page (a zero cursor is never reset)", err)
		}
		w.sync(t, b)
		if r, ok := b.record(t, "y"); ok && !r.Deleted() {
			t.Fatalf("replica b still has a live %q, deleted and collected at the authority", "y")
		}
		want := listStore(t, w.store, NoteKind)
		got2, err := b.eng.List(t.Context(), NoteKind, core.ListOptions{IncludeDeleted: true})
		if err != nil {
			t.Fatal(err)
		}
		if d := sameRecords(got2, want); d != "" {
			t.Errorf("replica b differs from the authority after its resync (replica vs authority): %s", d)
		}
		w.checkAppliedOnce(t)
	})
}
