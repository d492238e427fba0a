package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

type rawCase struct {
	name    string
	method  string
	path    string // raw, already escaped; may hold a query
	body    string
	headers map[string]string
	status  int
	code    string // the "error" member expected, "" = any
}

func doRaw(t *testing.T, base string, c rawCase) (int, []byte, http.Header) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	path, query, _ := strings.Cut(c.path, "?")
	u.Opaque, u.RawQuery = path, query
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, base, body)
	if err != nil {
		t.Fatal(err)
	}
	req.URL = u
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func TestHandlerBadInput(t *testing.T) {
	svc := newAuthority(t, &server.Options{MaxBatch: 3})
	srv, _ := serve(t, rest.NewHandler(svc, &rest.HandlerOptions{MaxBody: 64 << 10}))
	c := rest.NewClient(srv.URL, nil)
	ctx := context.Background()
	seed := mustPush(t, c, upsert("seed", "todo", "seed", `{"title":"seed"}`))[0].Record
	for _, id := range []string{"p1", "p2", "p3"} {
		mustPush(t, c, upsert("seed-"+id, "todo", id, `{}`))
	}
	page, err := c.Pull(ctx, core.PullRequest{Kind: "todo", Limit: 1})
	if err != nil || page.NextPageToken == "" {
		t.Fatalf("seed page: %+v %v", page, err)
	}
	token := url.QueryEscape(page.NextPageToken)
	truncated := url.QueryEscape(page.NextPageToken[:len(page.NextPageToken)/2])
	big := `{"x":"` + strings.Repeat("a", 65<<10) + `"}`
	bigBatch := `{"ops":[{"opId":"b","kind":"todo","id":"n","type":"upsert","payload":` + big + `}]}`
	ts := core.FormatTime(seed.UpdatedAt)

	cases := []rawCase{
		// PUT bodies
		{"malformed json", "PUT", "/todo/n1", `{"title":`, nil, 400, "bad_request"},
		{"empty body", "PUT", "/todo/n1", ``, nil, 400, "bad_request"},
		{"array body", "PUT", "/todo/n1", `[1,2]`, nil, 400, "bad_request"},
		{"string body", "PUT", "/todo/n1", `"x"`, nil, 400, "bad_request"},
		{"null body", "PUT", "/todo/n1", `null`, nil, 400, "bad_request"},
		{"two values", "PUT", "/todo/n1", `{} {}`, nil, 400, "bad_request"},
		{"base not a string", "PUT", "/todo/n1", `{"_baseUpdatedAt":5}`, nil, 400, "bad_request"},
		{"base not a time", "PUT", "/todo/n1", `{"_baseUpdatedAt":"yesterday"}`, nil, 400, "bad_request"},
		{"base finer than µs", "PUT", "/todo/n1", `{"_baseUpdatedAt":"2026-01-01T00:00:00.1234567Z"}`, nil, 400, "bad_request"},
		{"edited_at wrong type", "PUT", "/todo/n1", `{"edited_at":true}`, nil, 400, "bad_request"},
		{"updated_at wrong type", "PUT", "/todo/n1", `{"updated_at":{}}`, nil, 400, "bad_request"},
		{"deleted_at wrong type", "PUT", "/todo/n1", `{"deletedAt":[]}`, nil, 400, "bad_request"},
		{"id wrong type", "PUT", "/todo/n1", `{"id":7}`, nil, 400, "bad_request"},
		{"id differs from path", "PUT", "/todo/n1", `{"id":"n2"}`, nil, 400, "bad_request"},
		{"unknown system field", "PUT", "/todo/n1", `{"_rev":1}`, nil, 400, "bad_request"},
		{"duplicate field", "PUT", "/todo/n1", `{"a":1,"a":2}`, nil, 400, "bad_request"},
		{"body too large", "PUT", "/todo/n1", big, nil, 413, "too_large"},
		// headers
		{"force not a bool", "PUT", "/todo/n1", `{}`, map[string]string{"X-Force-Update": "yes"}, 400, "bad_request"},
		{"key with space", "PUT", "/todo/n1", `{}`, map[string]string{"X-Idempotency-Key": "a b"}, 400, "bad_request"},
		{"key too long", "PUT", "/todo/n1", `{}`, map[string]string{"X-Idempotency-Key": strings.Repeat("k", 256)}, 400, "bad_request"},
		{"basic auth", "PUT", "/todo/n1", `{}`, map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, 401, "unauthorized"},
		{"bearer without token", "GET", "/todo", ``, map[string]string{"Authorization": "Bearer "}, 401, "unauthorized"},
		{"delete force not a bool", "DELETE", "/todo/seed", ``, map[string]string{"X-Force-Delete": "2"}, 400, "bad_request"},
		{"delete bad base", "DELETE", "/todo/seed?_baseUpdatedAt=nope", ``, nil, 400, "bad_request"},
		{"delete base twice", "DELETE", "/todo/seed?_baseUpdatedAt=" + url.QueryEscape(ts) + "&_baseUpdatedAt=" + url.QueryEscape(ts), ``, nil, 400, "bad_request"},
		// ids and routes
		{"bad escape in id", "PUT", "/todo/%ZZ", `{}`, nil, 400, ""},
		{"invalid utf-8 id", "PUT", "/todo/%FF%FE", `{}`, nil, 400, "bad_request"},
		{"unescaped slash", "PUT", "/todo/a/b", `{}`, nil, 404, "not_found"},
		{"empty id", "PUT", "/todo/", `{}`, nil, 400, "bad_request"},
		{"reserved kind record", "PUT", "/batch/x", `{}`, nil, 404, "unknown_kind"},
		{"reserved kind health", "GET", "/health/x", ``, nil, 404, "unknown_kind"},
		{"unknown kind pull", "GET", "/No-Such", ``, nil, 404, "unknown_kind"},
		{"unknown kind get", "GET", "/No-Such/x", ``, nil, 404, "unknown_kind"},
		{"unknown kind put", "PUT", "/No-Such/x", `{"a":1}`, nil, 404, "unknown_kind"},
		{"unknown kind put forced", "PUT", "/No-Such/x", `{"a":1}`, map[string]string{"X-Force-Update": "true"}, 404, "unknown_kind"},
		{"unknown kind delete", "DELETE", "/No-Such/x", ``, nil, 404, "unknown_kind"},
		{"post to a kind", "POST", "/todo", `{}`, nil, 405, "method_not_allowed"},
		{"get batch", "GET", "/batch", ``, nil, 405, "method_not_allowed"},
		{"root", "GET", "/", ``, nil, 404, "not_found"},
		// pull parameters
		{"limit 0", "GET", "/todo?limit=0", ``, nil, 400, "bad_request"},
		{"limit negative", "GET", "/todo?limit=-5", ``, nil, 400, "bad_request"},
		{"limit not a number", "GET", "/todo?limit=ten", ``, nil, 400, "bad_request"},
		{"limit fraction", "GET", "/todo?limit=1.5", ``, nil, 400, "bad_request"},
		{"limit twice", "GET", "/todo?limit=1&limit=2", ``, nil, 400, "bad_request"},
		{"forged token", "GET", "/todo?pageToken=abc", ``, nil, 400, ""},
		{"truncated token", "GET", "/todo?pageToken=" + truncated, ``, nil, 400, ""},
		{"token for another kind", "GET", "/other?pageToken=" + token, ``, nil, 400, ""},
		{"empty token", "GET", "/todo?pageToken=", ``, nil, 400, ""},
		{"bad updatedSince", "GET", "/todo?updatedSince=2026-13-01", ``, nil, 400, "bad_request"},
		{"afterId alone", "GET", "/todo?afterId=x", ``, nil, 400, "bad_request"},
		{"includeDeleted maybe", "GET", "/todo?includeDeleted=maybe", ``, nil, 400, "bad_request"},
		// batch bodies
		{"batch malformed", "POST", "/batch", `{"ops":[`, nil, 400, "bad_request"},
		{"batch not an object", "POST", "/batch", `[]`, nil, 400, "bad_request"},
		{"batch without ops", "POST", "/batch", `{}`, nil, 400, "bad_request"},
		{"batch unknown top-level field", "POST", "/batch", `{"ops":[],"dryRun":true}`, nil, 400, "bad_request"},
		{"batch unknown op field", "POST", "/batch", `{"ops":[{"opId":"o","kind":"todo","id":"n","type":"delete","extra":1}]}`, nil, 400, "bad_request"},
		{"batch bad type", "POST", "/batch", `{"ops":[{"opId":"o","kind":"todo","id":"n","type":"patch"}]}`, nil, 400, "bad_request"},
		{"batch upsert without payload", "POST", "/batch", `{"ops":[{"opId":"o","kind":"todo","id":"n","type":"upsert"}]}`, nil, 400, "bad_request"},
		{"batch payload array", "POST", "/batch", `{"ops":[{"opId":"o","kind":"todo","id":"n","type":"upsert","payload":[1]}]}`, nil, 400, "bad_request"},
		{"batch delete with payload", "POST", "/batch", `{"ops":[{"opId":"o","kind":"todo","id":"n","type":"delete","payload":{}}]}`, nil, 400, "bad_request"},
		{"batch base wrong type", "POST", "/batch", `{"ops":[{"opId":"o","kind":"todo","id":"n","type":"delete","baseUpdatedAt":1}]}`, nil, 400, "bad_request"},
		{"batch base bad time", "POST", "/batch", `{"ops":[{"opId":"o","kind":"todo","id":"n","type":"delete","baseUpdatedAt":"x"}]}`, nil, 400, "bad_request"},
		{"batch force wrong type", "POST", "/batch", `{"ops":[{"opId":"o","kind":"todo","id":"n","type":"delete","force":"yes"}]}`, nil, 400, "bad_request"},
		{"batch empty opId", "POST", "/batch", `{"ops":[{"opId":"","kind":"todo","id":"n","type":"delete"}]}`, nil, 400, "bad_request"},
		{"batch empty id", "POST", "/batch", `{"ops":[{"opId":"o","kind":"todo","id":"","type":"delete"}]}`, nil, 400, "bad_request"},
		{"batch reserved kind", "POST", "/batch", `{"ops":[{"opId":"o","kind":"events","id":"n","type":"delete"}]}`, nil, 400, "bad_request"},
		{"batch duplicate opId", "POST", "/batch", `{"ops":[{"opId":"o","kind":"todo","id":"n","type":"upsert","payload":{}},{"opId":"o","kind":"todo","id":"m","type":"upsert","payload":{}}]}`, nil, 400, "bad_request"},
		{"batch good op then bad op", "POST", "/batch", `{"ops":[{"opId":"g","kind":"todo","id":"n","type":"upsert","payload":{"ok":1}},{"opId":"h","kind":"todo","id":"m","type":"upsert","payload":{"_x":1}}]}`, nil, 400, "bad_request"},
		{"batch over maxBatch", "POST", "/batch", `{"ops":[` + strings.Repeat(`{"opId":"o","kind":"todo","id":"n","type":"delete"},`, 3) + `{"opId":"p","kind":"todo","id":"n","type":"delete"}]}`, nil, 413, "too_large"},
		{"batch too large", "POST", "/batch", bigBatch, nil, 413, "too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := doRaw(t, srv.URL, tc)
			if status != tc.status {
				t.Fatalf("status %d, want %d; body %s", status, tc.status, body)
			}
			if tc.code == "" && status == 400 && !json.Valid(body) {
				return // refused by net/http before the handler (bad escapes)
			}
			var eb struct{ Error, Message string }
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error == "" {
				t.Fatalf("unreadable error body %q: %v", body, err)
			}
			if tc.code != "" && eb.Error != tc.code {
				t.Fatalf("error %q, want %q (%s)", eb.Error, tc.code, eb.Message)
			}
			if status == 400 && eb.Message == "" {
				t.Fatalf("400 without a message: %s", body)
			}
		})
	}
	// Nothing was written by any of them.
	all := pullAll(t, c, "todo", core.Cursor{}, 100)
	if len(all) != 4 {
		t.Fatalf("%d records after bad input", len(all))
	}
	for _, r := range all {
		if r.ID == "seed" && !r.UpdatedAt.Equal(seed.UpdatedAt) {
			t.Fatalf("seed changed: %+v", r)
		}
	}

	// Huge limits are clamped, not refused.
	for _, q := range []string{"limit=1000000000", "limit=99999999999999999999999"} {
		status, body, _ := doRaw(t, srv.URL, rawCase{method: "GET", path: "/todo?includeDeleted=true&" + q})
		if status != 200 || !bytes.Contains(body, []byte(`"items":[`)) {
			t.Fatalf("%s: %d %s", q, status, body)
		}
	}
}

func TestHandlerWireForm(t *testing.T) {
	svc := newAuthority(t, nil)
	srv, _ := serve(t, rest.NewHandler(svc, nil))
	// A seed client's PUT: whole record, echoed system fields, a base-less create.
	status, body, _ := doRaw(t, srv.URL, rawCase{method: "PUT", path: "/todo/a%2Fb%20c",
		body:    `{"id":"a/b c","title":"x","updated_at":null,"deleted_at":null,"edited_at":"2026-03-04T05:06:07.000008Z"}`,
		headers: map[string]string{"X-Idempotency-Key": "k1"}})
	if status != 200 {
		t.Fatalf("put: %d %s", status, body)
	}
	var rec map[string]any
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatal(err)
	}
	if rec["id"] != "a/b c" || rec["title"] != "x" || rec["deleted_at"] != nil || rec["edited_at"] != "2026-03-04T05:06:07.000008Z" {
		t.Fatalf("record: %s", body)
	}
	ts, _ := rec["updated_at"].(string)
	if _, err := core.ParseTime(ts); err != nil || len(ts) != len("2026-03-04T05:06:07.000008Z") {
		t.Fatalf("updated_at %q: %v", ts, err)
	}
	// Same key, same request: the same answer, nothing written.
	status, body2, _ := doRaw(t, srv.URL, rawCase{method: "PUT", path: "/todo/a%2Fb%20c",
		body:    `{"id":"a/b c","title":"x","updated_at":null,"deleted_at":null,"edited_at":"2026-03-04T05:06:07.000008Z"}`,
		headers: map[string]string{"X-Idempotency-Key": "k1"}})
	if status != 200 || !bytes.Equal(bytes.TrimSpace(body), bytes.TrimSpace(body2)) {
		t.Fatalf("replay: %d %s vs %s", status, body2, body)
	}
	// A create over an existing row is a 409 with the current record.
	status, body, _ = doRaw(t, srv.URL, rawCase{method: "PUT", path: "/todo/a%2Fb%20c", body: `{"title":"y"}`})
	var conflict struct {
		Error   string
		Current map[string]any
	}
	if status != 409 || json.Unmarshal(body, &conflict) != nil || conflict.Error != "conflict" || conflict.Current["title"] != "x" {
		t.Fatalf("conflict: %d %s", status, body)
	}
	// The pull page is the contract's envelope.
	status, body, _ = doRaw(t, srv.URL, rawCase{method: "GET", path: "/todo?limit=10&includeDeleted=true"})
	var page struct {
		Items         []map[string]any
		NextPageToken *string
	}
	if status != 200 || json.Unmarshal(body, &page) != nil || len(page.Items) != 1 || page.NextPageToken != nil {
		t.Fatalf("page: %d %s", status, body)
	}
	// Tombstones are left out unless includeDeleted=true.
	status, body, _ = doRaw(t, srv.URL, rawCase{method: "DELETE", path: "/todo/a%2Fb%20c?_baseUpdatedAt=" + url.QueryEscape(ts)})
	if status != 200 {
		t.Fatalf("delete: %d %s", status, body)
	}
	_, body, _ = doRaw(t, srv.URL, rawCase{method: "GET", path: "/todo"})
	if !bytes.Contains(body, []byte(`"items":[]`)) {
		t.Fatalf("without includeDeleted: %s", body)
	}
	// /health lists batch and events with the limits.
	status, body, _ = doRaw(t, srv.URL, rawCase{method: "GET", path: "/health"})
	var h struct {
		Status       string
		Protocol     int
		Capabilities []string
		MaxBatch     int
		MaxLimit     int
	}
	if status != 200 || json.Unmarshal(body, &h) != nil || h.Status != "ok" || h.Protocol != 1 ||
		strings.Join(h.Capabilities, ",") != "batch,events" || h.MaxBatch != 1000 || h.MaxLimit != 1000 {
		t.Fatalf("health: %d %s", status, body)
	}
}
