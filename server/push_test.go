package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

func TestInvariant13_StaleBaseIsConflictWithCurrent(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	v1 := mustApply(t, ctx, svc, upsert("op1", "note", "n1", `{"title":"a"}`, time.Time{}))
	v2 := mustApply(t, ctx, svc, upsert("op2", "note", "n1", `{"title":"b"}`, v1.UpdatedAt))
	if !v2.UpdatedAt.After(v1.UpdatedAt) {
		t.Fatalf("version did not increase: %v then %v", v1.UpdatedAt, v2.UpdatedAt)
	}
	r := push1(t, ctx, svc, upsert("op3", "note", "n1", `{"title":"stale"}`, v1.UpdatedAt))
	wantStatus(t, r, core.StatusConflict)
	if r.Record == nil || !r.Record.UpdatedAt.Equal(v2.UpdatedAt) || fields(t, *r.Record)["title"] != "b" {
		t.Fatalf("conflict carries %+v, want the current record (title b at %v)", r.Record, v2.UpdatedAt)
	}
	if got := getRec(t, ctx, svc, "note", "n1"); fields(t, got)["title"] != "b" {
		t.Fatalf("a conflicting op wrote: %s", got.Data)
	}
	// The base is compared as an instant: the same version in another zone matches.
	zone := time.FixedZone("x", 3600)
	mustApply(t, ctx, svc, upsert("op4", "note", "n1", `{"title":"c"}`, v2.UpdatedAt.In(zone)))
}

func TestInvariant13_CreateOverExistingIsConflict(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	v1 := mustApply(t, ctx, svc, upsert("c1", "note", "n1", `{"title":"a"}`, time.Time{}))
	r := push1(t, ctx, svc, upsert("c2", "note", "n1", `{"title":"again"}`, time.Time{}))
	wantStatus(t, r, core.StatusConflict)
	if r.Record == nil || !r.Record.UpdatedAt.Equal(v1.UpdatedAt) {
		t.Fatalf("conflict carries %+v, want the current record", r.Record)
	}
}

func TestInvariant13_TombstonesTakePartInTheBaseCheck(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	v1 := mustApply(t, ctx, svc, upsert("t1", "note", "n1", `{"title":"a"}`, time.Time{}))

	// A delete without a base on an existing row is a conflict.
	r := push1(t, ctx, svc, del("t2", "note", "n1", time.Time{}))
	wantStatus(t, r, core.StatusConflict)
	if r.Record == nil || r.Record.Deleted() {
		t.Fatalf("conflict carries %+v, want the live record", r.Record)
	}

	tomb := mustApply(t, ctx, svc, del("t3", "note", "n1", v1.UpdatedAt))
	if !tomb.Deleted() || !tomb.DeletedAt.Equal(tomb.UpdatedAt) || !tomb.UpdatedAt.After(v1.UpdatedAt) {
		t.Fatalf("tombstone %+v: want DeletedAt = new UpdatedAt", tomb)
	}
	if fields(t, tomb)["title"] != "a" {
		t.Fatalf("tombstone lost its data: %s", tomb.Data)
	}
	got := getRec(t, ctx, svc, "note", "n1")
	if !got.Deleted() {
		t.Fatalf("Get does not return the tombstone: %+v", got)
	}

	// A create over a tombstone is a conflict carrying the tombstone.
	r = push1(t, ctx, svc, upsert("t4", "note", "n1", `{"title":"b"}`, time.Time{}))
	wantStatus(t, r, core.StatusConflict)
	if r.Record == nil || !r.Record.Deleted() {
		t.Fatalf("conflict carries %+v, want the tombstone", r.Record)
	}
	// A re-create based on the tombstone's version is applied.
	re := mustApply(t, ctx, svc, upsert("t5", "note", "n1", `{"title":"b"}`, tomb.UpdatedAt))
	if re.Deleted() || fields(t, re)["title"] != "b" {
		t.Fatalf("re-create stored %+v", re)
	}
}

func TestInvariant13_ForceSkipsBaseCheckNotValidation(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, &server.Options{
		Validate: func(ctx context.Context, p core.Principal, op core.Op, cur *core.Record) error {
			if strings.Contains(string(op.Payload), "forbidden") {
				return fmt.Errorf("title not allowed: %w", core.ErrRejected)
			}
			return nil
		},
	})
	v1 := mustApply(t, ctx, svc, upsert("f1", "note", "n1", `{"title":"a"}`, time.Time{}))
	mustApply(t, ctx, svc, upsert("f2", "note", "n1", `{"title":"b"}`, v1.UpdatedAt))

	forced := upsert("f3", "note", "n1", `{"title":"mine"}`, v1.UpdatedAt)
	forced.Force = true
	if got := mustApply(t, ctx, svc, forced); fields(t, got)["title"] != "mine" {
		t.Fatalf("forced upsert stored %s", got.Data)
	}
	noBase := upsert("f4", "note", "n1", `{"title":"mine2"}`, time.Time{})
	noBase.Force = true
	mustApply(t, ctx, svc, noBase)

	bad := upsert("f5", "note", "n1", `{"title":"forbidden"}`, time.Time{})
	bad.Force = true
	r := push1(t, ctx, svc, bad)
	wantStatus(t, r, core.StatusRejected)
	if !r.Permanent {
		t.Fatal("a validation rejection must be permanent")
	}
	fd := del("f6", "note", "n1", time.Time{})
	fd.Force = true
	if got := mustApply(t, ctx, svc, fd); !got.Deleted() {
		t.Fatalf("forced delete stored %+v", got)
	}
}

func TestPushNotFound(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	wantStatus(t, push1(t, ctx, svc, del("d1", "note", "missing", time.Time{})), core.StatusNotFound)
	wantStatus(t, push1(t, ctx, svc, del("d2", "note", "missing", t0)), core.StatusNotFound)
	wantStatus(t, push1(t, ctx, svc, upsert("u1", "note", "missing", `{"a":1}`, t0)), core.StatusNotFound)
	if _, err := svc.Get(ctx, "note", "missing"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("nothing may be created by NotFound ops: Get = %v", err)
	}
	// A delete of a tombstone with its version is done (applied), and
	// writes no new version.
	v1 := mustApply(t, ctx, svc, upsert("u2", "note", "n", `{"a":1}`, time.Time{}))
	tomb := mustApply(t, ctx, svc, del("d3", "note", "n", v1.UpdatedAt))
	again := mustApply(t, ctx, svc, del("d4", "note", "n", tomb.UpdatedAt))
	if !again.UpdatedAt.Equal(tomb.UpdatedAt) {
		t.Fatalf("deleting a tombstone bumped its version: %v -> %v", tomb.UpdatedAt, again.UpdatedAt)
	}
}

func TestInvariant14_ReplayReturnsFirstAnswerAndWritesNothing(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	op := upsert("k1", "note", "n1", `{"title":"a","n":1.50}`, time.Time{})
	first := mustApply(t, ctx, svc, op)
	later := mustApply(t, ctx, svc, upsert("k2", "note", "n1", `{"title":"b"}`, first.UpdatedAt))

	// The same request, with the payload spelled differently (key order, spacing).
	replay := op
	replay.Payload = []byte(`{ "n":1.50, "title":"a" }`)
	r := push1(t, ctx, svc, replay)
	wantStatus(t, r, core.StatusApplied)
	if r.Record == nil || !r.Record.UpdatedAt.Equal(first.UpdatedAt) || fields(t, *r.Record)["title"] != "a" {
		t.Fatalf("replay answered %+v, want the first answer %+v", r.Record, first)
	}
	cur := getRec(t, ctx, svc, "note", "n1")
	if !cur.UpdatedAt.Equal(later.UpdatedAt) || fields(t, cur)["title"] != "b" {
		t.Fatalf("the replay wrote: current %+v", cur)
	}
	if feed := pullAll(t, ctx, svc, "note", 0); len(feed) != 1 {
		t.Fatalf("feed has %d rows, want 1", len(feed))
	}
	// A replayed op inside a batch counts as applied for the ops after it.
	res := push(t, ctx, svc, op, upsert("k3", "note", "n1", `{"title":"c"}`, later.UpdatedAt))
	wantStatus(t, res[0], core.StatusApplied)
	wantStatus(t, res[1], core.StatusApplied)
}

func TestInvariant14_KeyReuseWithAnotherRequestIsRejected(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	first := mustApply(t, ctx, svc, upsert("k1", "note", "n1", `{"title":"a"}`, time.Time{}))
	for _, op := range []core.Op{
		upsert("k1", "note", "n1", `{"title":"other"}`, first.UpdatedAt),
		upsert("k1", "note", "n2", `{"title":"a"}`, time.Time{}),
		upsert("k1", "task", "n1", `{"title":"a"}`, time.Time{}),
		del("k1", "note", "n1", first.UpdatedAt),
	} {
		r := push1(t, ctx, svc, op)
		wantStatus(t, r, core.StatusRejected)
		if !r.Permanent || !strings.Contains(r.Reason, "idempotency") {
			t.Fatalf("key reuse answered %+v, want a permanent rejection about the idempotency key", r)
		}
	}
	if cur := getRec(t, ctx, svc, "note", "n1"); !cur.UpdatedAt.Equal(first.UpdatedAt) {
		t.Fatalf("a refused key reuse wrote: %+v", cur)
	}
	if _, err := svc.Get(ctx, "note", "n2"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("a refused key reuse created n2: %v", err)
	}
}

func TestInvariant14_KeysArePerPrincipal(t *testing.T) {
	svc, _ := newService(t, nil)
	alice := core.WithPrincipal(t.Context(), core.Principal{ID: "alice"})
	bob := core.WithPrincipal(t.Context(), core.Principal{ID: "bob"})
	mustApply(t, alice, svc, upsert("same", "note", "a", `{}`, time.Time{}))
	mustApply(t, bob, svc, upsert("same", "note", "b", `{}`, time.Time{}))
}

func TestInvariant14_ConflictsAndRejectionsAreNotRecorded(t *testing.T) {
	ctx := t.Context()
	refuse := true
	svc, _ := newService(t, &server.Options{
		Validate: func(ctx context.Context, p core.Principal, op core.Op, cur *core.Record) error {
			if refuse && op.ID == "r1" {
				return fmt.Errorf("not today: %w", core.ErrRejected)
			}
			return nil
		},
	})
	v1 := mustApply(t, ctx, svc, upsert("a", "note", "n1", `{"title":"a"}`, time.Time{}))
	mustApply(t, ctx, svc, upsert("b", "note", "n1", `{"title":"b"}`, v1.UpdatedAt))

	op := upsert("c", "note", "n1", `{"title":"c"}`, v1.UpdatedAt)
	wantStatus(t, push1(t, ctx, svc, op), core.StatusConflict)
	op.Force = true // the forced retry of the conflicted op, same key
	if got := mustApply(t, ctx, svc, op); fields(t, got)["title"] != "c" {
		t.Fatalf("forced retry stored %s", got.Data)
	}
	// and that answer is now kept
	wantStatus(t, push1(t, ctx, svc, op), core.StatusApplied)

	rej := upsert("r", "note", "r1", `{}`, time.Time{})
	wantStatus(t, push1(t, ctx, svc, rej), core.StatusRejected)
	refuse = false
	mustApply(t, ctx, svc, rej)
}

func TestInvariant14_RecordsExpireAfterRetention(t *testing.T) {
	ctx := t.Context()
	clock := core.NewManualClock(t0)
	svc, _ := newService(t, &server.Options{Clock: clock, IdempotencyRetention: 48 * time.Hour})
	first := mustApply(t, ctx, svc, upsert("k", "note", "n1", `{"title":"a"}`, time.Time{}))
	reuse := upsert("k", "note", "n1", `{"title":"b"}`, first.UpdatedAt)

	clock.Advance(47*time.Hour + 30*time.Minute)
	// A purge runs with this push; the record (47.5 h old) is kept.
	wantStatus(t, push1(t, ctx, svc, reuse), core.StatusRejected)
	clock.Advance(45 * time.Minute)
	// The record is now older than the retention, but purges run at most
	// once an hour.
	wantStatus(t, push1(t, ctx, svc, reuse), core.StatusRejected)
	clock.Advance(30 * time.Minute)
	mustApply(t, ctx, svc, reuse)
}

func TestInvariant16_LaterOpsOfARecordAreSkipped(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	v1 := mustApply(t, ctx, svc, upsert("s0", "note", "a", `{"v":1}`, time.Time{}))
	mustApply(t, ctx, svc, upsert("s1", "note", "a", `{"v":2}`, v1.UpdatedAt))
	res := push(t, ctx, svc,
		upsert("s2", "note", "a", `{"v":3}`, v1.UpdatedAt), // conflict
		upsert("s3", "note", "b", `{"v":1}`, time.Time{}),  // another record: applied
		upsert("s4", "note", "a", `{"v":4}`, time.Time{}),  // forced-looking follow-up: skipped
		del("s5", "note", "a", time.Time{}),                // skipped
		upsert("s6", "task", "a", `{"v":1}`, time.Time{}),  // same id, other kind: applied
	)
	want := []core.PushStatus{core.StatusConflict, core.StatusApplied, core.StatusSkipped, core.StatusSkipped, core.StatusApplied}
	for i, w := range want {
		wantStatus(t, res[i], w)
	}
	if got := getRec(t, ctx, svc, "note", "a"); fmt.Sprint(fields(t, got)["v"]) != "2" {
		t.Fatalf("a skipped op wrote: %s", got.Data)
	}
	// A rejected op blocks the ops after it for its record too.
	res = push(t, ctx, svc,
		upsert("s7", "note", "c", `[1]`, time.Time{}),
		upsert("s8", "note", "c", `{"ok":true}`, time.Time{}),
	)
	wantStatus(t, res[0], core.StatusRejected)
	wantStatus(t, res[1], core.StatusSkipped)
}

func TestInvariant16_SavepointPerOp(t *testing.T) {
	ctx := t.Context()
	var st core.Store
	svc, sq := newService(t, &server.Options{
		Tables: []core.Table{core.Documents("note"), core.Documents("audit")},
		Validate: func(ctx context.Context, p core.Principal, op core.Op, cur *core.Record) error {
			if op.Kind != "note" {
				return nil
			}
			// The hook writes through ctx, joining the push's transaction.
			err := st.Update(ctx, func(ctx context.Context, tx core.Tx) error {
				return tx.Put(ctx, core.Record{Kind: "audit", ID: op.ID, UpdatedAt: t0, Data: []byte(`{}`)})
			})
			if err != nil {
				return err
			}
			switch op.ID {
			case "bad":
				return fmt.Errorf("refused: %w", core.ErrRejected)
			case "flaky":
				return errors.New("rule engine unavailable")
			}
			return nil
		},
	})
	st = sq
	res := push(t, ctx, svc,
		upsert("1", "note", "ok1", `{}`, time.Time{}),
		upsert("2", "note", "bad", `{}`, time.Time{}),
		upsert("3", "note", "flaky", `{}`, time.Time{}),
		upsert("4", "note", "ok2", `{}`, time.Time{}),
	)
	wantStatus(t, res[0], core.StatusApplied)
	wantStatus(t, res[1], core.StatusRejected)
	wantStatus(t, res[2], core.StatusRetry)
	wantStatus(t, res[3], core.StatusApplied)
	if !res[1].Permanent || res[2].Permanent {
		t.Fatalf("rejection permanent=%v, retry permanent=%v", res[1].Permanent, res[2].Permanent)
	}
	for _, id := range []string{"ok1", "ok2"} {
		getRec(t, ctx, svc, "note", id)
		getRec(t, ctx, svc, "audit", id)
	}
	for _, id := range []string{"bad", "flaky"} {
		if _, err := svc.Get(ctx, "note", id); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("note %s written: %v", id, err)
		}
		if _, err := svc.Get(ctx, "audit", id); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("the savepoint of %s was not rolled back: audit row present (%v)", id, err)
		}
	}
	// The retried op is not recorded and applies later with the same key.
	mustApply(t, ctx, svc, upsert("3", "note", "flaky2", `{}`, time.Time{}))
}

func TestPushRejectsBadOps(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	bad := []core.Op{
		upsert("p1", "note", "x", `[1,2]`, time.Time{}),
		upsert("p2", "note", "x", `"text"`, time.Time{}),
		upsert("p3", "note", "x", `null`, time.Time{}),
		upsert("p4", "note", "x", `{"a":`, time.Time{}),
		upsert("p5", "note", "x", ``, time.Time{}),
		upsert("p6", "note", "x", `{"id":"y"}`, time.Time{}),
		upsert("p7", "note", "x", `{"updated_at":"2026-01-01T00:00:00Z"}`, time.Time{}),
		upsert("p8", "note", "x", `{"_baseUpdatedAt":"2026-01-01T00:00:00Z"}`, time.Time{}),
		upsert("p9", "note", "", `{}`, time.Time{}),
		{OpID: "p12", Kind: "note", ID: "x", Type: "merge", Payload: []byte(`{}`)},
	}
	for _, op := range bad {
		r := push1(t, ctx, svc, op)
		if r.Status != core.StatusRejected || !r.Permanent || r.Reason == "" {
			t.Fatalf("op %s (%s): answered %+v, want a permanent rejection with a reason", op.OpID, op.Payload, r)
		}
	}
	// Ops of kinds that are not served: alone they fail the push with
	// ErrUnknownKind; in a batch each is a permanent rejection.
	unknown := []core.Op{upsert("p10", "nope", "x", `{}`, time.Time{}), upsert("p11", "Bad Kind", "x", `{}`, time.Time{})}
	for _, op := range unknown {
		if _, err := svc.Push(ctx, []core.Op{op}); !errors.Is(err, core.ErrUnknownKind) {
			t.Fatalf("op %s of kind %q alone: %v, want ErrUnknownKind", op.OpID, op.Kind, err)
		}
	}
	res, err := svc.Push(ctx, unknown)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Status != core.StatusRejected || !r.Permanent || r.Reason == "" {
			t.Fatalf("op %s in a batch: answered %+v, want a permanent rejection with a reason", unknown[i].OpID, r)
		}
	}
	if feed := pullAll(t, ctx, svc, "note", 0); len(feed) != 0 {
		t.Fatalf("bad ops wrote %d rows", len(feed))
	}
}

func TestPushLimitsAndAuth(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, &server.Options{MaxBatch: 2})
	if l, err := svc.BatchLimits(ctx); err != nil || l.MaxOps != 2 {
		t.Fatalf("BatchLimits = %+v, %v", l, err)
	}
	ops := []core.Op{upsert("1", "note", "a", `{}`, time.Time{}), upsert("2", "note", "b", `{}`, time.Time{}), upsert("3", "note", "c", `{}`, time.Time{})}
	if _, err := svc.Push(ctx, ops); !errors.Is(err, core.ErrTooLarge) {
		t.Fatalf("oversized push: %v, want ErrTooLarge", err)
	}
	if res, err := svc.Push(ctx, nil); err != nil || len(res) != 0 {
		t.Fatalf("empty push: %v, %v", res, err)
	}

	authed := newServiceOn(t, newStore(t), &server.Options{
		Authenticate: func(ctx context.Context, token string) (core.Principal, error) {
			if token != "good" {
				return core.Principal{}, errors.New("unknown token")
			}
			return core.Principal{ID: "u1"}, nil
		},
	})
	if _, err := authed.Authenticate(ctx, "bad"); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("bad token: %v, want ErrUnauthorized", err)
	}
	if _, err := authed.Push(ctx, ops[:1]); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("push without principal: %v, want ErrUnauthorized", err)
	}
	if _, err := authed.Pull(ctx, core.PullRequest{Kind: "note"}); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("pull without principal: %v, want ErrUnauthorized", err)
	}
	p, err := authed.Authenticate(ctx, "good")
	if err != nil || p.ID != "u1" {
		t.Fatalf("good token: %+v, %v", p, err)
	}
	mustApply(t, core.WithPrincipal(ctx, p), authed, ops[0])

	if p, err := svc.Authenticate(ctx, "anything"); err != nil || p.ID != "" {
		t.Fatalf("no Authenticate hook: %+v, %v, want the anonymous principal", p, err)
	}
}

func TestClosedService(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, nil)
	ch, err := svc.Subscribe(ctx, []string{"note"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	for range ch {
	}
	if _, err := svc.Push(ctx, []core.Op{upsert("1", "note", "a", `{}`, time.Time{})}); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("push after Close: %v", err)
	}
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "note"}); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("pull after Close: %v", err)
	}
	if err := svc.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStoreFailureIsUnavailable(t *testing.T) {
	ctx := t.Context()
	svc, st := newService(t, nil)
	mustApply(t, ctx, svc, upsert("1", "note", "a", `{}`, time.Time{}))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Push(ctx, []core.Op{upsert("2", "note", "b", `{}`, time.Time{})}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("push on a closed store: %v, want ErrUnavailable", err)
	}
	if _, err := svc.Pull(ctx, core.PullRequest{Kind: "note"}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("pull on a closed store: %v, want ErrUnavailable", err)
	}
}
