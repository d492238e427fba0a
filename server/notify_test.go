package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

func TestNoticesAfterCommit(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	ch, err := svc.Subscribe(ctx, []string{"note"})
	if err != nil {
		t.Fatal(err)
	}
	res := push(t, ctx, svc,
		upsert("1", "note", "a", `{}`, time.Time{}),
		upsert("2", "task", "x", `{}`, time.Time{}),
		upsert("3", "note", "b", `{}`, time.Time{}),
	)
	n := <-ch
	if n.Kind != "note" || n.ID != "b" || !n.UpdatedAt.Equal(res[2].Record.UpdatedAt) || n.Gap {
		t.Fatalf("notice %+v, want note up to b at %v", n, res[2].Record.UpdatedAt)
	}
	// Nothing is announced for a push that writes nothing (conflict, replay).
	wantStatus(t, push1(t, ctx, svc, upsert("4", "note", "a", `{}`, time.Time{})), core.StatusConflict)
	wantStatus(t, push1(t, ctx, svc, upsert("1", "note", "a", `{}`, time.Time{})), core.StatusApplied)
	c := mustApply(t, ctx, svc, upsert("5", "note", "c", `{}`, time.Time{}))
	if n := <-ch; n.Kind != "note" || n.ID != "c" || !n.UpdatedAt.Equal(c.UpdatedAt) {
		t.Fatalf("notice %+v, want note up to c (no task notice, none for unwritten ops)", n)
	}
}

func TestNoticesSlowSubscriberNeverBlocksPush(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	ch, err := svc.Subscribe(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	const pushes = 100 // more than the 64 buffered + 2 in flight
	var last core.Record
	for i := range pushes {
		last = mustApply(t, ctx, svc, upsert(fmt.Sprint(i), "note", fmt.Sprint("n", i), `{}`, time.Time{}))
	}
	// The subscriber read nothing while 100 pushes committed; it still
	// gets the newest notice, and notices never go backwards.
	var prev core.Cursor
	got := 0
	for n := range ch {
		got++
		if n.Kind != "note" || !prev.Before(n.UpdatedAt, n.ID) {
			t.Fatalf("notice %+v after %+v", n, prev)
		}
		prev = core.Cursor{UpdatedAt: n.UpdatedAt, ID: n.ID}
		if n.ID == last.ID && n.UpdatedAt.Equal(last.UpdatedAt) {
			break
		}
	}
	if got >= pushes {
		t.Fatalf("%d notices for %d pushes: none were coalesced", got, pushes)
	}
}

func TestNoticesEndWithContext(t *testing.T) {
	svc, _ := newService(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := svc.Subscribe(ctx, []string{"note"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range ch {
	}
}

func TestNoticesRespectScope(t *testing.T) {
	svc, _ := newService(t, &server.Options{Scope: tenantScope,
		Tables: []core.Table{core.Documents("note"), core.Documents("task"), core.Documents("other")}})
	alice := as(t.Context(), "alice", "t1")
	nobody := as(t.Context(), "nobody", "")
	if _, err := svc.Subscribe(nobody, []string{"task"}); !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("subscribe to a forbidden kind: %v, want ErrForbidden", err)
	}
	ch, err := svc.Subscribe(nobody, nil)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := svc.Subscribe(as(t.Context(), "bob", "t1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, alice, svc, upsert("1", "task", "x", `{}`, time.Time{}))
	mustApply(t, alice, svc, upsert("2", "note", "y", `{}`, time.Time{}))
	// bob reads task whole and note through a filter: the note's notice
	// names only the kind.
	if n := <-bob; n.Kind != "task" || n.ID != "x" {
		t.Fatalf("notice %+v, want the task's", n)
	}
	if n := <-bob; n.Kind != "note" || n.ID != "" || !n.UpdatedAt.IsZero() {
		t.Fatalf("notice %+v, want the note's naming no record", n)
	}
	// nobody may read no task (forbidden) and no note (an empty filter):
	// the first notice it hears is of a kind it may read.
	other := mustApply(t, alice, svc, upsert("3", "other", "z", `{}`, time.Time{}))
	if n := <-ch; n.Kind != "other" || !n.UpdatedAt.Equal(other.UpdatedAt) {
		t.Fatalf("notice %+v, want only the other kind's (task is forbidden, note empty to the subscriber)", n)
	}
}
