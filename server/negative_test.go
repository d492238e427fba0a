package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// Negative controls for invariants 13–16: each check runs against the real
// authority (it must pass) and against a deliberately broken authority built
// around it (it must fail), so the check is known to catch the defect.

// authority is what the checks push to and pull from.
type authority interface {
	core.Transport
	core.Getter
}

// forceAll skips the base check by forcing every op (breaks invariant 13).
type forceAll struct{ *server.Service }

func (f forceAll) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	forced := make([]core.Op, len(ops))
	for i, op := range ops {
		op.Force = true
		forced[i] = op
	}
	return f.Service.Push(ctx, forced)
}

// forgetful gives every delivery a fresh op ID (breaks invariant 14).
type forgetful struct {
	*server.Service
	n int
}

func (f *forgetful) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	fresh := make([]core.Op, len(ops))
	for i, op := range ops {
		f.n++
		op.OpID = fmt.Sprintf("%s-%d", op.OpID, f.n)
		fresh[i] = op
	}
	res, err := f.Service.Push(ctx, fresh)
	for i := range res {
		res[i].OpID = ops[i].OpID
	}
	return res, err
}

// impersonator serves every call as the principal "admin" of tenant b
// whatever the caller (breaks invariant 15 for tenant a's callers).
type impersonator struct{ *server.Service }

func (i impersonator) ctx(ctx context.Context) context.Context { return as(ctx, "admin", "b") }
func (i impersonator) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	return i.Service.Push(i.ctx(ctx), ops)
}
func (i impersonator) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	return i.Service.Pull(i.ctx(ctx), req)
}
func (i impersonator) Get(ctx context.Context, kind, id string) (core.Record, error) {
	return i.Service.Get(i.ctx(ctx), kind, id)
}

// opByOp pushes each op of a batch alone (breaks invariant 16: no Skipped).
type opByOp struct{ *server.Service }

func (o opByOp) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	out := make([]core.PushResult, 0, len(ops))
	for _, op := range ops {
		r, err := o.Service.Push(ctx, []core.Op{op})
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
	}
	return out, nil
}

func pushTo(ctx context.Context, a authority, ops ...core.Op) ([]core.PushResult, error) {
	res, err := a.Push(ctx, ops)
	if err == nil && len(res) != len(ops) {
		err = fmt.Errorf("%d results for %d ops", len(res), len(ops))
	}
	return res, err
}

// checkStaleBaseConflicts: a write on a stale base is a conflict and changes nothing.
func checkStaleBaseConflicts(ctx context.Context, a authority) error {
	res, err := pushTo(ctx, a, upsert("c1", "note", "n", `{"v":1}`, core.Record{}.UpdatedAt))
	if err != nil || res[0].Status != core.StatusApplied {
		return fmt.Errorf("create: %v %v", res, err)
	}
	v1 := res[0].Record.UpdatedAt
	if _, err := pushTo(ctx, a, upsert("c2", "note", "n", `{"v":2}`, v1)); err != nil {
		return err
	}
	res, err = pushTo(ctx, a, upsert("c3", "note", "n", `{"v":"stale"}`, v1))
	if err != nil {
		return err
	}
	if res[0].Status != core.StatusConflict {
		return fmt.Errorf("a stale base was answered %s", res[0].Status)
	}
	cur, err := a.Get(ctx, "note", "n")
	if err != nil || string(cur.Data) != `{"v":2}` {
		return fmt.Errorf("the record became %s (%v)", cur.Data, err)
	}
	return nil
}

// checkReplayWritesNothing: the same op twice is applied once.
func checkReplayWritesNothing(ctx context.Context, a authority) error {
	op := upsert("r1", "note", "r", `{"v":1}`, core.Record{}.UpdatedAt)
	first, err := pushTo(ctx, a, op)
	if err != nil || first[0].Status != core.StatusApplied {
		return fmt.Errorf("first: %v %v", first, err)
	}
	again, err := pushTo(ctx, a, op)
	if err != nil {
		return err
	}
	if again[0].Status != core.StatusApplied || !again[0].Record.UpdatedAt.Equal(first[0].Record.UpdatedAt) {
		return fmt.Errorf("a replay was answered %s with a new version", again[0].Status)
	}
	return nil
}

// checkForeignRecordsInvisible: tenant b's record is invisible to tenant a.
func checkForeignRecordsInvisible(ctx context.Context, svc *server.Service, a authority) error {
	if _, err := svc.Push(as(ctx, "bob", "b"), []core.Op{upsert("b1", "note", "secret", `{"v":"b"}`, core.Record{}.UpdatedAt)}); err != nil {
		return err
	}
	actx := as(ctx, "alice", "a")
	if _, err := a.Get(actx, "note", "secret"); !errors.Is(err, core.ErrNotFound) {
		return fmt.Errorf("tenant a fetched tenant b's record (%v)", err)
	}
	page, err := a.Pull(actx, core.PullRequest{Kind: "note"})
	if err != nil {
		return err
	}
	if len(page.Records) != 0 {
		return fmt.Errorf("tenant a pulled %d foreign records", len(page.Records))
	}
	res, err := pushTo(actx, a, upsert("a1", "note", "secret", `{"v":"a"}`, core.Record{}.UpdatedAt))
	if err != nil {
		return err
	}
	if res[0].Status != core.StatusNotFound {
		return fmt.Errorf("a write over a foreign record was answered %s", res[0].Status)
	}
	return nil
}

// checkLaterOpsSkipped: after an op of a record is not applied, the later
// ops of that record in the batch are skipped.
func checkLaterOpsSkipped(ctx context.Context, a authority) error {
	res, err := pushTo(ctx, a,
		upsert("s1", "note", "s", `{"_bad":1}`, core.Record{}.UpdatedAt), // rejected: reserved field
		upsert("s2", "note", "s", `{"v":2}`, core.Record{}.UpdatedAt))
	if err != nil {
		return err
	}
	if res[1].Status != core.StatusSkipped {
		return fmt.Errorf("the op after a rejected one was answered %s", res[1].Status)
	}
	if _, err := a.Get(ctx, "note", "s"); !errors.Is(err, core.ErrNotFound) {
		return fmt.Errorf("a skipped op was applied (%v)", err)
	}
	return nil
}

func TestNegativeControls_Invariants13to16(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		scoped bool
		check  func(ctx context.Context, svc *server.Service, a authority) error
		broken func(svc *server.Service) authority
	}{
		{"13 stale base is a conflict", false,
			func(ctx context.Context, _ *server.Service, a authority) error {
				return checkStaleBaseConflicts(ctx, a)
			},
			func(svc *server.Service) authority { return forceAll{svc} }},
		{"14 replay writes nothing", false,
			func(ctx context.Context, _ *server.Service, a authority) error {
				return checkReplayWritesNothing(ctx, a)
			},
			func(svc *server.Service) authority { return &forgetful{Service: svc} }},
		{"15 foreign records are invisible", true, checkForeignRecordsInvisible,
			func(svc *server.Service) authority { return impersonator{svc} }},
		{"16 later ops of a record are skipped", false,
			func(ctx context.Context, _ *server.Service, a authority) error { return checkLaterOpsSkipped(ctx, a) },
			func(svc *server.Service) authority { return opByOp{svc} }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := func() *server.Options {
				if c.scoped {
					return &server.Options{Scope: tenantScope}
				}
				return nil
			}
			svc, _ := newService(t, opts())
			if err := c.check(ctx, svc, svc); err != nil {
				t.Fatalf("the real authority fails the check: %v", err)
			}
			broken, _ := newService(t, opts())
			if err := c.check(ctx, broken, c.broken(broken)); err == nil {
				t.Fatal("the check missed the broken authority")
			} else {
				t.Logf("broken authority caught: %v", err)
			}
		})
	}
}
