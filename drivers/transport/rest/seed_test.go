package rest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/rest"
)

// seedBackend is a backend written from the seed library's contract alone:
// GET /{kind} with updatedSince/afterId/limit and a keyset pageToken,
// GET/PUT/DELETE /{kind}/{id} with X-Idempotency-Key and the force headers.
// It has no /health, no /batch and no /events, uses camelCase timestamps
// and answers a conflict with the current record itself.
type seedBackend struct {
	mu    sync.Mutex
	last  time.Time
	kinds map[string]map[string]map[string]any
	keys  map[string][]byte
}

func newSeedBackend() *seedBackend {
	return &seedBackend{kinds: map[string]map[string]map[string]any{}, keys: map[string][]byte{}}
}

func (b *seedBackend) now() string {
	t := time.Now().UTC().Truncate(time.Microsecond)
	if !t.After(b.last) {
		t = b.last.Add(time.Microsecond)
	}
	b.last = t
	return t.Format(core.TimeLayout)
}

func seedJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (b *seedBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) > 2 || parts[0] == "" || parts[0] == "health" || parts[0] == "batch" || parts[0] == "events" {
		http.NotFound(w, r)
		return
	}
	kind := parts[0]
	rows := b.kinds[kind]
	if rows == nil {
		rows = map[string]map[string]any{}
		b.kinds[kind] = rows
	}
	if len(parts) == 1 {
		b.list(w, r, rows)
		return
	}
	id := parts[1]
	key := r.Header.Get("X-Idempotency-Key")
	if prev, ok := b.keys[key]; ok && key != "" {
		w.Header().Set("Content-Type", "application/json")
		w.Write(prev)
		return
	}
	cur := rows[id]
	switch r.Method {
	case http.MethodGet:
		if cur == nil {
			seedJSON(w, 404, map[string]string{"error": "not found"})
			return
		}
		seedJSON(w, 200, cur)
	case http.MethodPut:
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			seedJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		base, _ := body["_baseUpdatedAt"].(string)
		delete(body, "_baseUpdatedAt")
		force := r.Header.Get("X-Force-Update") == "true"
		if !force && cur != nil && cur["updatedAt"] != base {
			seedJSON(w, 409, cur)
			return
		}
		if !force && cur == nil && base != "" {
			seedJSON(w, 404, map[string]string{"error": "not found"})
			return
		}
		body["id"], body["updatedAt"], body["deletedAt"] = id, b.now(), nil
		rows[id] = body
		out, _ := json.Marshal(body)
		b.keys[key] = out
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	case http.MethodDelete:
		if cur == nil {
			seedJSON(w, 404, map[string]string{"error": "not found"})
			return
		}
		if r.Header.Get("X-Force-Delete") != "true" && cur["updatedAt"] != r.URL.Query().Get("_baseUpdatedAt") {
			seedJSON(w, 409, cur)
			return
		}
		now := b.now()
		cur["updatedAt"], cur["deletedAt"] = now, now
		out, _ := json.Marshal(cur)
		b.keys[key] = out
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	default:
		http.NotFound(w, r)
	}
}

func (b *seedBackend) list(w http.ResponseWriter, r *http.Request, rows map[string]map[string]any) {
	q := r.URL.Query()
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		seedJSON(w, 400, map[string]string{"error": "bad limit"})
		return
	}
	since, after := q.Get("updatedSince"), q.Get("afterId")
	if tok := q.Get("pageToken"); tok != "" {
		var ok bool
		if since, after, ok = strings.Cut(tok, "|"); !ok {
			seedJSON(w, 400, map[string]string{"error": "bad token"})
			return
		}
	}
	var items []map[string]any
	for _, row := range rows {
		u := row["updatedAt"].(string) // fixed-width layout: string order is time order
		if since != "" && (u < since || (u == since && row["id"].(string) <= after)) {
			continue
		}
		items = append(items, row)
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i]["updatedAt"].(string), items[j]["updatedAt"].(string)
		return a < b || (a == b && items[i]["id"].(string) < items[j]["id"].(string))
	})
	var next any
	if len(items) > limit {
		items = items[:limit]
		l := items[limit-1]
		next = l["updatedAt"].(string) + "|" + l["id"].(string)
	}
	if items == nil {
		items = []map[string]any{}
	}
	seedJSON(w, 200, map[string]any{"items": items, "nextPageToken": next})
}

func TestClientAgainstSeedBackend(t *testing.T) {
	srv, rec := serve(t, newSeedBackend())
	c := rest.NewClient(srv.URL, nil)
	ctx := context.Background()
	var ops []core.Op
	for i := range 7 {
		ops = append(ops, upsert(fmt.Sprint("c", i), "todo", fmt.Sprint("t", i), fmt.Sprintf(`{"n":%d}`, i)))
	}
	res := mustPush(t, c, ops...)
	for _, r := range res {
		if r.Status != core.StatusApplied || r.Record.UpdatedAt.IsZero() {
			t.Fatalf("create: %+v", r)
		}
	}
	if rec.count("POST /batch") != 0 || rec.count("PUT /todo/*") != 7 || rec.count("GET /health") != 1 {
		t.Fatalf("requests: %v", rec.seen)
	}
	// Update with a base, a stale base (409 with the record itself), a delete.
	up := upsert("u", "todo", "t0", `{"n":100}`)
	up.BaseUpdatedAt = res[0].Record.UpdatedAt
	if r := mustPush(t, c, up)[0]; r.Status != core.StatusApplied {
		t.Fatalf("update: %+v", r)
	}
	stale := upsert("s", "todo", "t0", `{"n":-1}`)
	stale.BaseUpdatedAt = res[0].Record.UpdatedAt
	conflict := mustPush(t, c, stale)[0]
	if conflict.Status != core.StatusConflict || conflict.Record == nil || fmt.Sprint(fields(t, *conflict.Record)["n"]) != "100" {
		t.Fatalf("conflict: %+v", conflict)
	}
	del := core.Op{OpID: "d", Kind: "todo", ID: "t1", Type: core.OpDelete, BaseUpdatedAt: res[1].Record.UpdatedAt}
	if r := mustPush(t, c, del)[0]; r.Status != core.StatusApplied || !r.Record.Deleted() {
		t.Fatalf("delete: %+v", r)
	}
	// Pull in pages of 3, then resume from a cursor.
	all := pullAll(t, c, "todo", core.Cursor{}, 3)
	if len(all) != 7 {
		t.Fatalf("pulled %d", len(all))
	}
	if all[len(all)-1].ID != "t1" || !all[len(all)-1].Deleted() || all[len(all)-2].ID != "t0" {
		t.Fatalf("order: last %+v", all[len(all)-1])
	}
	after := core.Cursor{UpdatedAt: all[4].UpdatedAt, ID: all[4].ID}
	if tail := pullAll(t, c, "todo", after, 3); len(tail) != 2 || tail[0].ID != "t0" {
		t.Fatalf("resume: %+v", tail)
	}
	got, err := c.Get(ctx, "todo", "t0")
	if err != nil || fmt.Sprint(fields(t, got)["n"]) != "100" {
		t.Fatalf("get: %+v %v", got, err)
	}
	if _, err := c.Subscribe(ctx, []string{"todo"}); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("subscribe: %v", err)
	}
	if rec.count("GET /health") != 1 {
		t.Fatalf("/health probed %d times", rec.count("GET /health"))
	}
}
