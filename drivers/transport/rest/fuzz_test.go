package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
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
		if op.OpID == "" || op.Kind == "" || op.ID == "" {
			e.t.Fatalf("op without identity: %+v", op)
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
