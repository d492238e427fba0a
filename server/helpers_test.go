package server_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC)

func newStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "authority.db"), nil)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// newService returns a Service over a fresh SQLite store serving the
// document kinds "note" and "task" unless opts names tables.
func newService(t *testing.T, opts *server.Options) (*server.Service, *sqlite.Store) {
	t.Helper()
	st := newStore(t)
	return newServiceOn(t, st, opts), st
}

func newServiceOn(t *testing.T, st core.Store, opts *server.Options) *server.Service {
	t.Helper()
	if opts == nil {
		opts = &server.Options{}
	}
	if opts.Tables == nil && opts.DynamicKinds == nil {
		opts.Tables = []core.Table{core.Documents("note"), core.Documents("task")}
	}
	svc, err := server.New(t.Context(), st, opts)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}

func upsert(opID, kind, id, payload string, base time.Time) core.Op {
	return core.Op{OpID: opID, Kind: kind, ID: id, Type: core.OpUpsert, Payload: json.RawMessage(payload), BaseUpdatedAt: base}
}

func del(opID, kind, id string, base time.Time) core.Op {
	return core.Op{OpID: opID, Kind: kind, ID: id, Type: core.OpDelete, BaseUpdatedAt: base}
}

func push(t *testing.T, ctx context.Context, svc *server.Service, ops ...core.Op) []core.PushResult {
	t.Helper()
	res, err := svc.Push(ctx, ops)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if len(res) != len(ops) {
		t.Fatalf("push: %d results for %d ops", len(res), len(ops))
	}
	for i := range res {
		if res[i].OpID != ops[i].OpID {
			t.Fatalf("result %d answers op %q, want %q", i, res[i].OpID, ops[i].OpID)
		}
	}
	return res
}

func push1(t *testing.T, ctx context.Context, svc *server.Service, op core.Op) core.PushResult {
	t.Helper()
	return push(t, ctx, svc, op)[0]
}

func wantStatus(t *testing.T, r core.PushResult, want core.PushStatus) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("op %s: status %v (reason %q), want %v", r.OpID, r.Status, r.Reason, want)
	}
}

// mustApply pushes op and returns the stored record.
func mustApply(t *testing.T, ctx context.Context, svc *server.Service, op core.Op) core.Record {
	t.Helper()
	r := push1(t, ctx, svc, op)
	wantStatus(t, r, core.StatusApplied)
	if r.Record == nil {
		t.Fatalf("op %s applied without a record", op.OpID)
	}
	return *r.Record
}

// pullAll walks a kind's whole feed from the start with page tokens.
func pullAll(t *testing.T, ctx context.Context, svc *server.Service, kind string, limit int) []core.Record {
	t.Helper()
	var out []core.Record
	req := core.PullRequest{Kind: kind, Limit: limit}
	for range 100000 {
		page, err := svc.Pull(ctx, req)
		if err != nil {
			t.Fatalf("pull %s: %v", kind, err)
		}
		out = append(out, page.Records...)
		if page.NextPageToken == "" {
			return out
		}
		req.PageToken = page.NextPageToken
	}
	t.Fatalf("pull %s: walk does not end", kind)
	return nil
}

func fields(t *testing.T, r core.Record) map[string]any {
	t.Helper()
	m, err := r.Fields()
	if err != nil {
		t.Fatalf("fields of %s/%s: %v", r.Kind, r.ID, err)
	}
	return m
}

func getRec(t *testing.T, ctx context.Context, svc *server.Service, kind, id string) core.Record {
	t.Helper()
	r, err := svc.Get(ctx, kind, id)
	if err != nil {
		t.Fatalf("get %s/%s: %v", kind, id, err)
	}
	return r
}
