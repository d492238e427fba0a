package rest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

func TestClientPushPullRoundTrip(t *testing.T) {
	s := newStack(t, nil, nil)
	ctx := context.Background()
	res := mustPush(t, s.client,
		upsert("op1", "todo", "a", `{"title":"one","tags":["x","y"],"n":1.5}`),
		upsert("op2", "todo", "b", `{"title":"two"}`),
	)
	for _, r := range res {
		if r.Status != core.StatusApplied || r.Record == nil {
			t.Fatalf("want applied with record, got %+v", r)
		}
	}
	a := res[0].Record
	if a.ID != "a" || a.Kind != "todo" || a.UpdatedAt.IsZero() || a.Deleted() {
		t.Fatalf("applied record: %+v", a)
	}
	if got := fields(t, *a); got["title"] != "one" || len(got) != 3 {
		t.Fatalf("applied fields: %v", got)
	}
	// The /health probe found "batch": the two ops went in one POST /batch.
	if s.rec.count("POST /batch") != 1 || s.rec.count("PUT /todo/*") != 0 || s.rec.count("GET /health") != 1 {
		t.Fatalf("requests: %v", s.rec.seen)
	}

	// Update with the applied version as base; then a stale base conflicts.
	up := upsert("op3", "todo", "a", `{"title":"uno"}`)
	up.BaseUpdatedAt = a.UpdatedAt
	up.EditedAt = time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	r3 := mustPush(t, s.client, up)[0]
	if r3.Status != core.StatusApplied || !r3.Record.UpdatedAt.After(a.UpdatedAt) || !r3.Record.EditedAt.Equal(up.EditedAt) {
		t.Fatalf("update: %+v", r3)
	}
	stale := upsert("op4", "todo", "a", `{"title":"stale"}`)
	stale.BaseUpdatedAt = a.UpdatedAt
	r4 := mustPush(t, s.client, stale)[0]
	if r4.Status != core.StatusConflict || r4.Record == nil || !r4.Record.UpdatedAt.Equal(r3.Record.UpdatedAt) {
		t.Fatalf("stale update: %+v", r4)
	}
	if got := fields(t, *r4.Record); got["title"] != "uno" {
		t.Fatalf("conflict current: %v", got)
	}
	// Forced: applied over the newer version.
	stale.OpID, stale.Force = "op5", true
	if r := mustPush(t, s.client, stale)[0]; r.Status != core.StatusApplied {
		t.Fatalf("forced: %+v", r)
	}
	// Delete with the current base makes a tombstone that pulls still carry.
	cur, err := s.client.Get(ctx, "todo", "b")
	if err != nil {
		t.Fatal(err)
	}
	del := core.Op{OpID: "op6", Kind: "todo", ID: "b", Type: core.OpDelete, BaseUpdatedAt: cur.UpdatedAt}
	if r := mustPush(t, s.client, del)[0]; r.Status != core.StatusApplied || !r.Record.Deleted() {
		t.Fatalf("delete: %+v", r)
	}
	tomb, err := s.client.Get(ctx, "todo", "b")
	if err != nil || !tomb.Deleted() {
		t.Fatalf("get tombstone: %+v %v", tomb, err)
	}
	if _, err := s.client.Get(ctx, "todo", "nope"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	// A delete of a missing record is NotFound; ops after a failed one for
	// the same record in the same push are Skipped.
	res = mustPush(t, s.client,
		core.Op{OpID: "op7", Kind: "todo", ID: "zz", Type: core.OpDelete, BaseUpdatedAt: cur.UpdatedAt},
		upsert("op8", "todo", "zz", `{"title":"after"}`),
		upsert("op9", "todo", "c", `{"title":"other"}`),
	)
	if res[0].Status != core.StatusNotFound || res[1].Status != core.StatusSkipped || res[2].Status != core.StatusApplied {
		t.Fatalf("not found then skipped: %+v", res)
	}

	all := pullAll(t, s.client, "todo", core.Cursor{}, 1)
	if len(all) != 3 {
		t.Fatalf("pulled %d records", len(all))
	}
	for i := 1; i < len(all); i++ {
		if !(core.Cursor{UpdatedAt: all[i-1].UpdatedAt, ID: all[i-1].ID}).Before(all[i].UpdatedAt, all[i].ID) {
			t.Fatalf("feed out of order at %d", i)
		}
	}
	// Resuming from a cursor returns exactly the rows after it.
	mid := core.Cursor{UpdatedAt: all[0].UpdatedAt, ID: all[0].ID}
	rest2 := pullAll(t, s.client, "todo", mid, 100)
	if len(rest2) != 2 || rest2[0].ID != all[1].ID {
		t.Fatalf("resume: %+v", rest2)
	}
}

// hideHealth makes a handler look like a seed backend without /health.
func hideHealth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func TestClientPerOpWhenHealthIsMissing(t *testing.T) {
	svc := newAuthority(t, nil)
	srv, rec := serve(t, hideHealth(rest.NewHandler(svc, nil)))
	c := rest.NewClient(srv.URL, nil)
	ctx := context.Background()
	ids := []string{"a/b", "50%", "with space", "ünïcödé", "日本", "q?x=1&y#z", "..", "+plus"}
	var ops []core.Op
	for i, id := range ids {
		ops = append(ops, upsert(fmt.Sprint("put", i), "note", id, fmt.Sprintf(`{"i":%d}`, i)))
	}
	res := mustPush(t, c, ops...)
	for i, r := range res {
		if r.Status != core.StatusApplied || r.Record.ID != ids[i] {
			t.Fatalf("%q: %+v", ids[i], r)
		}
	}
	if rec.count("POST /batch") != 0 || rec.count("PUT /note/*") != len(ids) {
		t.Fatalf("requests: %v", rec.seen)
	}
	bl, err := c.BatchLimits(ctx)
	if err != nil || bl.MaxOps <= 0 {
		t.Fatalf("batch limits: %+v %v", bl, err)
	}
	if _, err := c.Subscribe(ctx, []string{"note"}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("subscribe without events: %v", err)
	}
	for i, id := range ids {
		got, err := c.Get(ctx, "note", id)
		if err != nil || got.ID != id {
			t.Fatalf("get %q: %+v %v", id, got, err)
		}
		if f := fields(t, got); fmt.Sprint(f["i"]) != fmt.Sprint(i) {
			t.Fatalf("get %q: %v", id, f)
		}
		del := core.Op{OpID: fmt.Sprint("del", i), Kind: "note", ID: id, Type: core.OpDelete, BaseUpdatedAt: got.UpdatedAt}
		if r := mustPush(t, c, del)[0]; r.Status != core.StatusApplied || !r.Record.Deleted() {
			t.Fatalf("delete %q: %+v", id, r)
		}
	}
	// A delete without a base on an existing row conflicts unless forced.
	mustPush(t, c, upsert("again", "note", "x", `{}`))
	if r := mustPush(t, c, core.Op{OpID: "d1", Kind: "note", ID: "x", Type: core.OpDelete})[0]; r.Status != core.StatusConflict {
		t.Fatalf("unforced delete: %+v", r)
	}
	if r := mustPush(t, c, core.Op{OpID: "d2", Kind: "note", ID: "x", Type: core.OpDelete, Force: true})[0]; r.Status != core.StatusApplied {
		t.Fatalf("forced delete: %+v", r)
	}
	all := pullAll(t, c, "note", core.Cursor{}, 3)
	if len(all) != len(ids)+1 {
		t.Fatalf("pulled %d", len(all))
	}
	for _, r := range all {
		if !r.Deleted() {
			t.Fatalf("not a tombstone: %+v", r)
		}
	}
	// Idempotency through the header: the same key answers the same record.
	first := mustPush(t, c, upsert("same-key", "note", "idem", `{"v":1}`))[0]
	again := mustPush(t, c, upsert("same-key", "note", "idem", `{"v":1}`))[0]
	if again.Status != core.StatusApplied || !again.Record.UpdatedAt.Equal(first.Record.UpdatedAt) {
		t.Fatalf("replay: %+v vs %+v", again, first)
	}
}

func TestClientSplitsBatchesByMaxBatch(t *testing.T) {
	s := newStack(t, &server.Options{MaxBatch: 2}, nil)
	ctx := context.Background()
	bl, err := s.client.BatchLimits(ctx)
	if err != nil || bl.MaxOps != 2 {
		t.Fatalf("limits: %+v %v", bl, err)
	}
	// "a" fails in the first batch (a delete of a missing row), so its
	// op in the second batch is answered Skipped without being sent.
	ops := []core.Op{
		{OpID: "1", Kind: "todo", ID: "a", Type: core.OpDelete, BaseUpdatedAt: time.Unix(1, 0)},
		upsert("2", "todo", "b", `{}`),
		upsert("3", "todo", "a", `{"late":true}`),
		upsert("4", "todo", "c", `{}`),
		upsert("5", "todo", "d", `{}`),
	}
	res := mustPush(t, s.client, ops...)
	want := []core.PushStatus{core.StatusNotFound, core.StatusApplied, core.StatusSkipped, core.StatusApplied, core.StatusApplied}
	for i := range want {
		if res[i].Status != want[i] || res[i].OpID != ops[i].OpID {
			t.Fatalf("op %d: %+v", i, res[i])
		}
	}
	if n := s.rec.count("POST /batch"); n != 2 {
		t.Fatalf("%d batches", n)
	}
	if _, err := s.client.Get(ctx, "todo", "a"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("the skipped op was applied: %v", err)
	}
}

func TestClientPayloadPrecision(t *testing.T) {
	s := newStack(t, nil, nil)
	payload := `{"big":12345678901234567890,"s":"\u00e9\"\\\n","nested":{"a":[1,{"b":null}]},"f":1e-7}`
	r := mustPush(t, s.client, upsert("p", "doc", "x", payload))[0]
	if r.Status != core.StatusApplied {
		t.Fatal(r)
	}
	got := pullAll(t, s.client, "doc", core.Cursor{}, 10)
	var a, b any
	if err := json.Unmarshal(got[0].Data, &a); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(payload), &b)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("payload changed: %s", got[0].Data)
	}
	if got[0].UpdatedAt.Nanosecond()%1000 != 0 || !got[0].UpdatedAt.Equal(r.Record.UpdatedAt) {
		t.Fatalf("timestamps: %v vs %v", got[0].UpdatedAt, r.Record.UpdatedAt)
	}
}
