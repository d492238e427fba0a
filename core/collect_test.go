package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/faults"
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

// A first walk whose first attempt fails lists the replica's rows again at
// the next attempt: a row the replica pushed between the two (its op
// settled by the Sync whose pull failed, or by a push alone) is listed too,
// and removed when the walk ends if the authority deleted and collected it
// meanwhile. Listing only at the first attempt kept it forever (the
// convergence property's "replica keeps a live row the authority deleted
// and collected").
func TestFirstWalkListsRowsSettledBetweenAttempts(t *testing.T) {
	ctx := context.Background()
	clock := core.NewManualClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	svc := newAuthority(t, &server.Options{Clock: clock, TombstoneRetention: time.Hour})
	inj, err := faults.New(faults.Options{Rules: []faults.Rule{{Fault: faults.DropRequest, Method: faults.Pull}}})
	if err != nil {
		t.Fatal(err)
	}
	r := newReplica(t, faults.Wrap(svc, inj), nil)
	other := newReplicaOn(t, openStore(t, "other.db"), svc, nil)
	if err := r.notes.Put(ctx, "a", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Sync(ctx); err == nil {
		t.Fatal("the pull went through the fault")
	}
	if err := r.notes.Put(ctx, "b", map[string]any{"x": 2}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r, core.PullKinds()) // b pushed; r's cursor is still zero
	mustSync(t, other)
	if err := other.notes.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, other)
	clock.Advance(2 * time.Hour)
	if _, err := svc.Collect(ctx, "note"); err != nil { // the background pass may have run first
		t.Fatal(err)
	}
	if _, ok := authGet(t, svc, "note", "b"); ok {
		t.Fatal("b's tombstone was not collected")
	}
	inj.SetEnabled(false)
	mustSync(t, r)
	if _, err := r.eng.Get(ctx, "note", "b"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("the replica still has b, deleted and collected at the authority (%v)", err)
	}
	if _, err := r.eng.Get(ctx, "note", "a"); err != nil {
		t.Fatalf("the replica lost a: %v", err)
	}
}

// The same holds for a clearing resync interrupted before its first page:
// at the next attempt its list gains the rows settled since, and one the
// authority deleted and collected meanwhile is removed when the walk ends.
func TestResyncListsRowsSettledBeforeItsFirstPage(t *testing.T) {
	ctx := context.Background()
	clock := core.NewManualClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	svc := newAuthority(t, &server.Options{Clock: clock, TombstoneRetention: time.Hour})
	fromStart := func(c faults.Call) bool { return c.Pull.After.IsZero() && c.Pull.PageToken == "" }
	inj, err := faults.New(faults.Options{Rules: []faults.Rule{{Fault: faults.DropRequest, Method: faults.Pull, Match: fromStart}}})
	if err != nil {
		t.Fatal(err)
	}
	inj.SetEnabled(false)
	r := newReplica(t, faults.Wrap(svc, inj), nil)
	other := newReplicaOn(t, openStore(t, "other.db"), svc, nil)
	for _, id := range []string{"a", "x"} {
		if err := r.notes.Put(ctx, id, map[string]any{"x": 1}); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, r)
	mustSync(t, other)
	if err := other.notes.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, other)
	clock.Advance(2 * time.Hour)
	if _, err := svc.Collect(ctx, "note"); err != nil {
		t.Fatal(err)
	}
	// r's pull is reset_required; the resync's walk from the start fails.
	inj.SetEnabled(true)
	if _, err := r.eng.Sync(ctx); err == nil {
		t.Fatal("the walk went through the fault")
	}
	if err := r.notes.Put(ctx, "y", map[string]any{"x": 2}); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r, core.PullKinds()) // y pushed while the resync waits
	mustSync(t, other)
	if err := other.notes.Delete(ctx, "y"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, other)
	clock.Advance(2 * time.Hour)
	if _, err := svc.Collect(ctx, "note"); err != nil {
		t.Fatal(err)
	}
	if _, ok := authGet(t, svc, "note", "y"); ok {
		t.Fatal("y's tombstone was not collected")
	}
	inj.SetEnabled(false)
	mustSync(t, r)
	for id, want := range map[string]bool{"a": true, "x": false, "y": false} {
		_, err := r.eng.Get(ctx, "note", id)
		if got := err == nil; got != want {
			t.Errorf("after the resync the replica has %s: %v (%v), want %v", id, got, err, want)
		}
	}
}
