package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// A replica that pushed a create and never pulled holds the row with a
// zero cursor, which is never reset_required. When another replica deleted
// the record and the authority collected the tombstone, the first walk
// from the start does not mention it: the row is removed when the walk
// ends, and a row with an op in the outbox is kept.
func TestFirstWalkRemovesRowsTheAuthorityCollected(t *testing.T) {
	ctx := context.Background()
	clock := core.NewManualClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	svc := newAuthority(t, &server.Options{Clock: clock, TombstoneRetention: time.Hour})
	r := newReplica(t, svc, nil)
	other := newReplicaOn(t, openStore(t, "other.db"), svc, nil)
	if err := r.notes.Put(ctx, "a", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r, core.PullKinds()) // pushed, never pulled
	mustSync(t, other)
	if err := other.notes.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, other)
	clock.Advance(2 * time.Hour)
	if _, err := svc.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.notes.Put(ctx, "mine", map[string]any{"x": 2}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r, core.PushKinds()) // pull only: "mine" stays in the outbox
	if _, err := r.eng.Get(ctx, "note", "a"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("the replica still has a, deleted and collected at the authority (%v)", err)
	}
	if _, err := r.eng.Get(ctx, "note", "mine"); err != nil {
		t.Fatalf("the replica lost its pending row: %v", err)
	}
	mustSync(t, r)
	if _, err := r.eng.Get(ctx, "note", "mine"); err != nil {
		t.Fatalf("after the push: %v", err)
	}
}
