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

// tenantScope limits "note" to the caller's tenant and refuses "task" to
// principals without a tenant.
func tenantScope(ctx context.Context, p core.Principal, kind string) (*core.Filter, error) {
	tenant := p.Attrs["tenant"]
	switch kind {
	case "note":
		if tenant == "" {
			return &core.Filter{Field: "tenant"}, nil // sees nothing, creates nothing
		}
		return &core.Filter{Field: "tenant", Values: []string{tenant}}, nil
	case "task":
		if tenant == "" {
			return nil, fmt.Errorf("no tenant: %w", core.ErrForbidden)
		}
	}
	return nil, nil
}

func as(ctx context.Context, id, tenant string) context.Context {
	attrs := map[string]string{}
	if tenant != "" {
		attrs["tenant"] = tenant
	}
	return core.WithPrincipal(ctx, core.Principal{ID: id, Attrs: attrs})
}

func TestInvariant15_ScopeFieldIsSetByTheServer(t *testing.T) {
	svc, _ := newService(t, &server.Options{Scope: tenantScope})
	alice := as(t.Context(), "alice", "t1")
	rec := mustApply(t, alice, svc, upsert("1", "note", "a", `{"title":"x","tenant":"t2"}`, time.Time{}))
	if got := fields(t, rec)["tenant"]; got != "t1" {
		t.Fatalf("created with tenant %v, want the server's t1", got)
	}
	rec = mustApply(t, alice, svc, upsert("2", "note", "a", `{"title":"y"}`, rec.UpdatedAt))
	if got := fields(t, rec)["tenant"]; got != "t1" || fields(t, rec)["title"] != "y" {
		t.Fatalf("update stored %s, want the tenant kept", rec.Data)
	}
	rec = mustApply(t, alice, svc, upsert("3", "note", "a", `{"title":"z","tenant":"t2"}`, rec.UpdatedAt))
	if got := fields(t, rec)["tenant"]; got != "t1" {
		t.Fatalf("an update moved the row to tenant %v", got)
	}
	stored := getRec(t, alice, svc, "note", "a")
	if fields(t, stored)["tenant"] != "t1" {
		t.Fatalf("stored %s", stored.Data)
	}
	nobody := as(t.Context(), "nobody", "")
	r := push1(t, nobody, svc, upsert("4", "note", "b", `{"tenant":"t1"}`, time.Time{}))
	if r.Status != core.StatusRejected || !r.Permanent {
		t.Fatalf("create without a scope value: %+v, want a permanent rejection", r)
	}
}

func TestInvariant15_OutOfScopeIsInvisible(t *testing.T) {
	svc, _ := newService(t, &server.Options{Scope: tenantScope})
	alice := as(t.Context(), "alice", "t1")
	bob := as(t.Context(), "bob", "t2")
	a := mustApply(t, alice, svc, upsert("1", "note", "a", `{"title":"secret"}`, time.Time{}))
	mustApply(t, bob, svc, upsert("1", "note", "b", `{"title":"bob's"}`, time.Time{}))

	if recs := pullAll(t, bob, svc, "note", 1); len(recs) != 1 || recs[0].ID != "b" {
		t.Fatalf("bob pulls %+v, want only b", recs)
	}
	if recs := pullAll(t, alice, svc, "note", 1); len(recs) != 1 || recs[0].ID != "a" {
		t.Fatalf("alice pulls %+v, want only a", recs)
	}
	if _, err := svc.Get(bob, "note", "a"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("bob gets alice's row: %v", err)
	}
	forced := upsert("f", "note", "a", `{"title":"mine"}`, time.Time{})
	forced.Force = true
	forcedDel := del("fd", "note", "a", time.Time{})
	forcedDel.Force = true
	for _, op := range []core.Op{
		upsert("u1", "note", "a", `{"title":"overwrite"}`, a.UpdatedAt), // right base
		upsert("u2", "note", "a", `{"title":"overwrite"}`, t0),          // wrong base
		upsert("u3", "note", "a", `{"title":"create"}`, time.Time{}),    // create over it
		forced,
		del("d1", "note", "a", a.UpdatedAt),
		del("d2", "note", "a", time.Time{}),
		forcedDel,
	} {
		r := push1(t, bob, svc, op)
		if r.Status != core.StatusNotFound || r.Record != nil {
			t.Fatalf("bob's op %s on alice's row: %+v, want NotFound without a record", op.OpID, r)
		}
	}
	if got := getRec(t, alice, svc, "note", "a"); !got.UpdatedAt.Equal(a.UpdatedAt) {
		t.Fatalf("alice's row was written by bob: %+v", got)
	}
	// A principal without a tenant sees nothing of "note", and may not read "task".
	nobody := as(t.Context(), "nobody", "")
	if recs := pullAll(t, nobody, svc, "note", 0); len(recs) != 0 {
		t.Fatalf("empty scope pulls %+v", recs)
	}
	if _, err := svc.Pull(nobody, core.PullRequest{Kind: "task"}); !errors.Is(err, core.ErrForbidden) {
		t.Fatalf("forbidden kind: %v, want ErrForbidden", err)
	}
	r := push1(t, nobody, svc, upsert("t", "task", "x", `{}`, time.Time{}))
	if r.Status != core.StatusRejected || !r.Permanent {
		t.Fatalf("push to a forbidden kind: %+v", r)
	}
}
