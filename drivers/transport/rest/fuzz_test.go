package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// echo is an authority that applies every op as sent and checks that what
// the handler decoded is sane.
type echo struct{ t *testing.T }

func (e echo) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	if req.Limit < 0 {
		e.t.Fatalf("negative limit reached the authority: %d", req.Limit)
	}
	if req.PageToken == "x" {
		return core.Page{}, core.ErrBadCursor
	}
	return core.Page{Records: []core.Record{{Kind: req.Kind, ID: "a\x00\"\\é", UpdatedAt: time.Unix(1, 1000),
		Data: json.RawMessage(`{"v":[1,{"w":"\u2028"}]}`)}}, NextPageToken: "n", Remaining: 3}, nil
}

func (e echo) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	out := make([]core.PushResult, len(ops))
	for i, op := range ops {
		if op.Kind == "" || op.ID == "" || (op.OpID == "" && len(ops) > 1) {
			e.t.Fatalf("op without identity: %+v", op)
		}
		if len(ops) == 1 && op.OpID == "" {
			// A PUT or DELETE without X-Idempotency-Key: no key, so no
			// idempotency record. Its target passed checkTarget.
			if err := core.CheckID(op.ID); err != nil {
				e.t.Fatalf("a bad id reached the authority: %v", err)
			}
		}
		if op.Type == core.OpUpsert {
			if err := core.CheckData(op.Payload); err != nil {
				e.t.Fatalf("bad payload %s reached the authority: %v", op.Payload, err)
			}
		}
		rec := core.Record{Kind: op.Kind, ID: op.ID, UpdatedAt: time.Unix(2, 2000), EditedAt: op.EditedAt, Data: op.Payload}
		out[i] = core.PushResult{OpID: op.OpID, Status: core.StatusApplied, Record: &rec}
	}
	return out, nil
}

func FuzzHandlerDecode(f *testing.F) {
	f.Add(uint8(0), "todo/a%2Fb", "", []byte(`{"title":"x","_baseUpdatedAt":"2026-01-01T00:00:00.000001Z"}`), "true")
	f.Add(uint8(0), "todo/x", "", []byte(`{"id":"x","updated_at":null,"edited_at":"2026-01-01T00:00:00Z","n":[1,{"a":"}"}]}`), "")
	f.Add(uint8(1), "batch", "", []byte(`{"ops":[{"opId":"o","kind":"todo","id":"n","type":"upsert","payload":{"a":1},"baseUpdatedAt":"2026-01-01T00:00:00Z","force":true}]}`), "")
	f.Add(uint8(2), "todo", "limit=10&includeDeleted=true&updatedSince=2026-01-01T00%3A00%3A00Z&afterId=a", []byte(nil), "")
	f.Add(uint8(2), "todo", "pageToken=x&limit=-1", []byte(nil), "")
	f.Add(uint8(3), "todo/%E6%97%A5", "_baseUpdatedAt=2026-01-01T00:00:00.123456Z", []byte(nil), "false")
	f.Fuzz(func(t *testing.T, method uint8, path, query string, body []byte, force string) {
		h := NewHandler(echo{t}, &HandlerOptions{MaxBody: 1 << 16, MaxBatch: 50})
		methods := []string{http.MethodPut, http.MethodPost, http.MethodGet, http.MethodDelete}
		u := &url.URL{Scheme: "http", Host: "x", Opaque: "/" + path, RawQuery: query}
		if _, err := url.ParseRequestURI(u.String()); err != nil {
			t.Skip() // net/http would refuse it before any handler
		}
		req := httptest.NewRequest(methods[int(method)%len(methods)], "http://x/", bytes.NewReader(body))
		req.URL = &url.URL{Path: "/" + path, RawQuery: query}
		if p, err := url.PathUnescape(path); err == nil {
			req.URL.Path, req.URL.RawPath = "/"+p, "/"+path
		}
		if force != "" {
			req.Header.Set("X-Force-Update", force)
			req.Header.Set("X-Force-Delete", force)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		res := w.Result()
		out := w.Body.Bytes()
		switch res.StatusCode {
		case 200, 400, 404, 405, 413:
		default:
			t.Fatalf("status %d for %s %s?%s: %s", res.StatusCode, req.Method, path, query, out)
		}
		if !json.Valid(out) {
			t.Fatalf("answer is not JSON: %q", out)
		}
		if res.StatusCode >= 400 {
			var eb struct{ Error string }
			if json.Unmarshal(out, &eb) != nil || eb.Error == "" {
				t.Fatalf("error without a code: %s", out)
			}
			return
		}
		if req.Method == http.MethodPut {
			var arena []byte
			rec, err := decodeRecord("k", out, &arena)
			if err != nil {
				t.Fatalf("echoed record unreadable: %v: %s", err, out)
			}
			if err := core.CheckData(rec.Data); err != nil {
				t.Fatalf("echoed data: %v", err)
			}
		}
	})
}

// The batch decoder alone: anything it accepts is a well-formed op list.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"ops":[{"opId":"o","kind":"todo","id":"n","type":"delete"}]}`))
	f.Add([]byte(`{"ops":[{"opId":"o","kind":"todo","id":"n","type":"upsert","payload":{"a":{"b":[]}},"editedAt":null}]}`))
	f.Add([]byte(`{"ops":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ops, err := decodeBatch(body, 100)
		if err != nil {
			if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrTooLarge) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		for _, op := range ops {
			if op.Type == core.OpUpsert {
				if err := core.CheckData(op.Payload); err != nil {
					t.Fatalf("accepted a bad payload %s: %v", op.Payload, err)
				}
			}
		}
	})
}

// FuzzDecodeRecordBody: the PUT body decoder (and a batch op's payload).
// Whatever it accepts is a JSON object holding exactly the body's business
// fields: no system field, no name twice, every value as sent.
func FuzzDecodeRecordBody(f *testing.F) {
	f.Add([]byte(`{"id":"x","title":"t","_baseUpdatedAt":"2026-01-01T00:00:00.000001Z","edited_at":null}`), "x")
	f.Add([]byte(`{"a":{"b":[1,2,{"c":"\u00e9"}]},"updatedAt":"2026-01-01T00:00:00Z"}`), "x")
	f.Add([]byte(`{"a":1,"\u0061":2}`), "x")
	f.Add([]byte(`{"_x":1}`), "x")
	f.Add([]byte(`{"id":7}`), "7")
	f.Fuzz(func(t *testing.T, body []byte, id string) {
		fl, err := splitBody(body, id)
		if err != nil {
			if !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		var in map[string]json.RawMessage
		if err := json.Unmarshal(body, &in); err != nil {
			t.Fatalf("accepted a body encoding/json cannot read: %v", err)
		}
		var out map[string]json.RawMessage
		if err := json.Unmarshal(fl.payload, &out); err != nil || out == nil {
			t.Fatalf("payload %q is not an object: %v", fl.payload, err)
		}
		if err := core.CheckData(fl.payload); err != nil {
			t.Fatalf("payload %q has a reserved field: %v", fl.payload, err)
		}
		for k, v := range in {
			switch k {
			case "id", "updated_at", "updatedAt", "deleted_at", "deletedAt", "edited_at", "editedAt", "_baseUpdatedAt":
				if _, ok := out[k]; ok {
					t.Fatalf("system field %q left in the payload %q", k, fl.payload)
				}
				continue
			}
			if !bytes.Equal(out[k], v) {
				t.Fatalf("field %q is %q in the payload, %q in the body", k, out[k], v)
			}
		}
		if len(out) > len(in) {
			t.Fatalf("payload %q has more fields than the body %q", fl.payload, body)
		}
	})
}

// FuzzPullQuery: the query parser of GET /{kind}. A malformed query string
// is an error (never the first page); an accepted one has a limit within
// the cap, a cursor id within core's limits, and a token only when given.
func FuzzPullQuery(f *testing.F) {
	f.Add("limit=10&includeDeleted=true&updatedSince=2026-01-01T00%3A00%3A00Z&afterId=a")
	f.Add("pageToken=%%%%")
	f.Add("pageToken=abc&updatedSince=2026-01-01T00:00:00.123456Z")
	f.Add("limit=99999999999999999999")
	f.Add("limit=1&limit=2")
	f.Add("afterId=x&updatedSince=2026-01-01T00:00:00Z&afterId=%00")
	f.Add("updatedSince=2026-01-01T00:00:00Z&afterId=" + strings.Repeat("a", 300))
	h := NewHandler(echo{}, &HandlerOptions{MaxLimit: 100}).(*Handler)
	f.Fuzz(func(t *testing.T, raw string) {
		req, _, err := h.parsePullQuery("todo", raw)
		q, qerr := url.ParseQuery(raw)
		if err != nil {
			if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrBadCursor) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if qerr != nil {
			t.Fatalf("a malformed query %q was accepted: %v", raw, qerr)
		}
		if req.Kind != "todo" || req.Limit < 0 || req.Limit > 100 {
			t.Fatalf("request %+v", req)
		}
		if req.After.ID != "" {
			if err := core.CheckID(req.After.ID); err != nil || req.After.UpdatedAt.IsZero() {
				t.Fatalf("cursor %+v: %v", req.After, err)
			}
		}
		if req.PageToken != "" && req.PageToken != q.Get("pageToken") {
			t.Fatalf("token %q, query has %q", req.PageToken, q.Get("pageToken"))
		}
		if req.PageToken != "" && !req.After.IsZero() {
			t.Fatalf("both a token and a cursor: %+v", req)
		}
	})
}
