package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

// A pull resuming before the kind's horizon is reset_required; one at the
// horizon, one from the start and every page of a walk from the start are
// served; a tombstone within the retention stays.
func TestCollectHorizon(t *testing.T) {
	ctx := t.Context()
	clock := core.NewManualClock(t0)
	svc, _ := newService(t, &server.Options{Clock: clock, TombstoneRetention: 24 * time.Hour, TombstoneBatch: 2})
	var vers []time.Time
	for i, id := range []string{"a", "b", "c", "d", "e"} {
		vers = append(vers, push1(t, ctx, svc, upsert(fmt.Sprint("u", i), "note", id, `{}`, time.Time{})).Record.UpdatedAt)
	}
	before := core.Cursor{UpdatedAt: vers[4], ID: "e"}
	var delA, delB core.PushResult
	clock.Advance(time.Minute)
	delA = push1(t, ctx, svc, del("da", "note", "a", vers[0]))
	delB = push1(t, ctx, svc, del("db", "note", "b", vers[1]))
	if delA.Status != core.StatusApplied || delB.Status != core.StatusApplied {
		t.Fatalf("deletes: %+v %+v", delA, delB)
	}
	at := core.Cursor{UpdatedAt: delB.Record.UpdatedAt, ID: "b"}
	// Before the clock passes the retention nothing can be collected (the
	// background pass runs on the clock), so the old cursor is served.
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "note", After: before}); err != nil {
		t.Fatalf("pull before any collection: %v", err)
	}
	clock.Advance(47 * time.Hour)
	c := push1(t, ctx, svc, del("dc", "note", "c", vers[2])) // within the retention
	// The background pass may have run when the clock moved; Collect
	// reports the horizon either way.
	got, err := svc.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range got {
		if g.Kind == "note" && !g.Horizon.Equal(delB.Record.UpdatedAt) {
			t.Fatalf("collected %+v, want the horizon at %s", g, core.FormatTime(delB.Record.UpdatedAt))
		}
		if g.Kind == "task" && !g.Horizon.IsZero() {
			t.Fatalf("collected %+v: a kind without tombstones has no horizon", g)
		}
	}
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "note", After: before}); !errors.Is(err, core.ErrResetRequired) {
		t.Fatalf("pull after a cursor older than the horizon: %v, want ErrResetRequired", err)
	}
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "note", After: at}); err != nil {
		t.Fatalf("pull at the horizon: %v", err)
	}
	var ids []string
	req := core.PullRequest{Kind: "note", Limit: 1}
	for {
		p, err := svc.Pull(ctx, req)
		if err != nil {
			t.Fatalf("walk from the start: %v", err)
		}
		for _, r := range p.Records {
			ids = append(ids, r.ID)
		}
		if p.NextPageToken == "" {
			break
		}
		req.PageToken = p.NextPageToken
	}
	if fmt.Sprint(ids) != "[d e c]" {
		t.Fatalf("the feed after collection holds %v, want [d e c] (c's tombstone is within the retention)", ids)
	}
	st, err := svc.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range st {
		if k.Kind == "note" && (k.Tombstones != 1 || !k.Horizon.Equal(delB.Record.UpdatedAt)) {
			t.Fatalf("status %+v, want 1 tombstone and the horizon at %s", k, core.FormatTime(delB.Record.UpdatedAt))
		}
	}
	_ = c
}

// Without a retention nothing is collected and no cursor is reset.
func TestCollectOffKeepsTombstones(t *testing.T) {
	ctx := t.Context()
	clock := core.NewManualClock(t0)
	svc, _ := newService(t, &server.Options{Clock: clock})
	v := push1(t, ctx, svc, upsert("u", "note", "a", `{}`, time.Time{})).Record.UpdatedAt
	push1(t, ctx, svc, del("d", "note", "a", v))
	clock.Advance(10 * 365 * 24 * time.Hour)
	if got, err := svc.Collect(ctx); err != nil || len(got) != 0 {
		t.Fatalf("collect without a retention: %+v %v", got, err)
	}
	p, err := svc.Pull(ctx, core.PullRequest{Kind: "note", After: core.Cursor{UpdatedAt: v, ID: "a"}})
	if err != nil || len(p.Records) != 1 {
		t.Fatalf("pull: %+v %v", p, err)
	}
	if _, err := server.New(ctx, newStore(t), &server.Options{TombstoneRetention: -time.Hour}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("a negative retention: %v, want ErrInvalid", err)
	}
}

// New starts the collection in the background when there is a retention:
// it runs at once, then every period of the Service's clock, until Close.
func TestCollectInBackground(t *testing.T) {
	ctx := t.Context()
	clock := core.NewManualClock(t0)
	st := newStore(t)
	old := newServiceOn(t, st, &server.Options{Clock: clock})
	v := push1(t, ctx, old, upsert("u1", "note", "a", `{}`, time.Time{})).Record.UpdatedAt
	push1(t, ctx, old, del("d1", "note", "a", v))
	_ = old.Close()
	clock.Advance(48 * time.Hour)
	done := make(chan int, 4)
	svc := newServiceOn(t, st, &server.Options{Clock: clock, TombstoneRetention: 24 * time.Hour,
		Hooks: &server.Hooks{AfterCollect: func(kind string, n int) { done <- n }}})
	select {
	case n := <-done:
		if n != 1 {
			t.Fatalf("the first pass removed %d", n)
		}
	case <-ctx.Done():
		t.Fatal("no collection after New")
	}
	v = push1(t, ctx, svc, upsert("u2", "note", "b", `{}`, time.Time{})).Record.UpdatedAt
	push1(t, ctx, svc, del("d2", "note", "b", v))
	clock.BlockUntil(1) // the collector waits for its next period
	clock.Advance(48 * time.Hour)
	select {
	case n := <-done:
		if n != 1 {
			t.Fatalf("the second pass removed %d", n)
		}
	case <-ctx.Done():
		t.Fatal("no collection after the period")
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Collect(ctx); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("collect after Close: %v", err)
	}
}

// A Service with a tombstone retention: deletes older than it are collected
// and a replica whose cursor is older than what was collected is told to
// pull the kind again.
func ExampleService_Collect() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "offsync-collect")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	clock := core.NewManualClock(time.Date(2026, 11, 24, 19, 41, 55, 0, time.UTC))
	svc, err := server.New(ctx, store, &server.Options{
		Tables:             []core.Table{core.Documents("note")},
		Clock:              clock,
		TombstoneRetention: 90 * 24 * time.Hour,
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	res, _ := svc.Push(ctx, []core.Op{{OpID: "op-1", Kind: "note", ID: "n1", Type: core.OpUpsert, Payload: []byte(`{"title":"milk"}`)}})
	cursor := core.Cursor{UpdatedAt: res[0].Record.UpdatedAt, ID: "n1"}
	_, _ = svc.Push(ctx, []core.Op{{OpID: "op-2", Kind: "note", ID: "n1", Type: core.OpDelete, BaseUpdatedAt: cursor.UpdatedAt}})

	clock.Advance(91 * 24 * time.Hour)
	// Collection runs in the background; Collect runs a pass now.
	if _, err := svc.Collect(ctx); err != nil {
		panic(err)
	}
	st, _ := svc.Status(ctx)
	fmt.Println("tombstones left:", st[0].Tombstones)
	_, err = svc.Pull(ctx, core.PullRequest{Kind: "note", After: cursor})
	fmt.Println("reset required:", errors.Is(err, core.ErrResetRequired))
	// Output:
	// tombstones left: 0
	// reset required: true
}

// A page token carries the kind's horizon when it was issued: a collection
// that overtakes the walk (removes tombstones after the token's position)
// makes the token reset_required, since the walk would skip those deletes.
// A token at or after the new horizon is served, and so is a token of a
// walk from the start (the replica removes, when its walk ends, the rows
// the walk did not bring).
func TestCollectResetsOvertakenPageToken(t *testing.T) {
	ctx := t.Context()
	clock := core.NewManualClock(t0)
	svc, _ := newService(t, &server.Options{Clock: clock, TombstoneRetention: 24 * time.Hour})
	ver := map[string]time.Time{}
	for i, id := range []string{"a", "b", "c"} {
		ver[id] = push1(t, ctx, svc, upsert(fmt.Sprint("u", i), "note", id, `{}`, time.Time{})).Record.UpdatedAt
	}
	da := push1(t, ctx, svc, del("da", "note", "a", ver["a"])).Record.UpdatedAt
	for i, id := range []string{"d", "e", "f", "g"} {
		ver[id] = push1(t, ctx, svc, upsert(fmt.Sprint("v", i), "note", id, `{}`, time.Time{})).Record.UpdatedAt
	}
	// Walks under way before any collection: one resumed from c, one from
	// the start.
	from := core.PullRequest{Kind: "note", After: core.Cursor{UpdatedAt: ver["b"], ID: "b"}, Limit: 1}
	atC := pull1(t, ctx, svc, from, "c")
	atA := pull1(t, ctx, svc, core.PullRequest{Kind: "note", Limit: 1, PageToken: atC}, "a") // a's tombstone: at the horizon to come
	atD := pull1(t, ctx, svc, core.PullRequest{Kind: "note", Limit: 1, PageToken: atA}, "d")
	start := pull1(t, ctx, svc, core.PullRequest{Kind: "note", Limit: 1}, "b")

	clock.Advance(time.Minute)
	de := push1(t, ctx, svc, del("de", "note", "e", ver["e"])).Record.UpdatedAt
	clock.Advance(48 * time.Hour)
	if _, err := svc.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	// The horizon is now e's tombstone: a, e collected.
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "note", Limit: 1, PageToken: atC}); !errors.Is(err, core.ErrResetRequired) {
		t.Fatalf("a token at c, issued before a collection up to %s: %v, want ErrResetRequired", core.FormatTime(de), err)
	}
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "note", Limit: 1, PageToken: atD}); !errors.Is(err, core.ErrResetRequired) {
		t.Fatalf("a token at d, issued before e's tombstone was collected: %v, want ErrResetRequired", err)
	}
	// A walk from the start is served through the collection: e is simply
	// not in it any more.
	var ids []string
	req := core.PullRequest{Kind: "note", Limit: 1, PageToken: start}
	for {
		p, err := svc.Pull(ctx, req)
		if err != nil {
			t.Fatalf("a walk from the start, after the collection: %v", err)
		}
		for _, r := range p.Records {
			ids = append(ids, r.ID)
		}
		if p.NextPageToken == "" {
			break
		}
		req.PageToken = p.NextPageToken
	}
	if fmt.Sprint(ids) != "[c d f g]" {
		t.Fatalf("the walk from the start brought %v after b, want [c d f g]", ids)
	}
	// A cursor older than the horizon is reset; one at it is served, and
	// its walk's token is reset only by a collection that passes it.
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "note", After: core.Cursor{UpdatedAt: da, ID: "a"}}); !errors.Is(err, core.ErrResetRequired) {
		t.Fatalf("a cursor at a's tombstone, older than the horizon: %v, want ErrResetRequired", err)
	}
	vk := push1(t, ctx, svc, upsert("uk", "note", "k", `{}`, time.Time{})).Record.UpdatedAt
	dk := push1(t, ctx, svc, del("dk", "note", "k", vk)).Record.UpdatedAt
	push1(t, ctx, svc, upsert("um", "note", "m", `{}`, time.Time{}))
	push1(t, ctx, svc, upsert("un", "note", "n", `{}`, time.Time{}))
	atK := pull1(t, ctx, svc, core.PullRequest{Kind: "note", After: core.Cursor{UpdatedAt: de, ID: "e"}, Limit: 1}, "k")
	clock.Advance(48 * time.Hour)
	// The background pass may run when the clock moves; Collect reports
	// the horizon either way.
	got, err := svc.Collect(ctx, "note")
	if err != nil || len(got) != 1 || !got[0].Horizon.Equal(dk) {
		t.Fatalf("the second collection: %+v, %v; want the horizon at k's tombstone", got, err)
	}
	atM := pull1(t, ctx, svc, core.PullRequest{Kind: "note", Limit: 1, PageToken: atK}, "m") // at the new horizon: served
	p, err := svc.Pull(ctx, core.PullRequest{Kind: "note", Limit: 1, PageToken: atM})
	if err != nil || len(p.Records) != 1 || p.Records[0].ID != "n" {
		t.Fatalf("a token issued after the collection: %+v, %v; want n", p, err)
	}
}

// pull1 pulls req, checks that the page holds exactly the record id and
// returns its next page token.
func pull1(t *testing.T, ctx context.Context, svc *server.Service, req core.PullRequest, id string) string {
	t.Helper()
	p, err := svc.Pull(ctx, req)
	if err != nil {
		t.Fatalf("pull %+v: %v", req, err)
	}
	if len(p.Records) != 1 || p.Records[0].ID != id || p.NextPageToken == "" {
		t.Fatalf("pull %+v: %d records (%v), token %q; want %s and a token", req, len(p.Records), p.Records, p.NextPageToken, id)
	}
	return p.NextPageToken
}
