package graphql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/offsync/offsync/core"
	gql "github.com/offsync/offsync/drivers/transport/graphql"
	"github.com/offsync/offsync/server"
)

// FuzzRequest posts arbitrary bodies to the server half (over the fixed
// authority): it never panics, and every answer is a GraphQL answer whose
// errors carry one of the contract's codes.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		request(`{ health { status } }`, nil),
		request(`query($k: String!) { pull(kind: $k, limit: 2) { records { kind id updatedAt deletedAt editedAt data } nextPageToken remaining } }`, map[string]any{"k": "todo"}),
		request(pushMutation, upsertVars("op", "x", map[string]any{"a": 1})),
		request(pushMutation, map[string]any{"ops": []any{map[string]any{"opId": "o", "kind": "todo", "id": "d", "type": "DELETE", "baseUpdatedAt": "2026-11-24T19:41:55.123456Z"}}}),
		`{"query":"{ pull(kind: \"t\" { id } }"}`,
		`{"query":"mutation { push(ops: [{opId: \"a\", kind: \"t\", id: \"b\", type: UPSERT, payload: [1]}]) { status } }"}`,
		`[]`, `null`, `{"query":1}`,
	} {
		f.Add([]byte(s))
	}
	srv := gql.NewServer(fixed{}, server.TransportConfig{Limits: server.Limits{MaxMessage: 1 << 16}}, nil)
	codes := map[string]bool{"UNAUTHENTICATED": true, "FORBIDDEN": true, "BAD_USER_INPUT": true, "NOT_FOUND": true,
		"RESET_REQUIRED": true, "TOO_LARGE": true, "RATE_LIMITED": true, "UNAVAILABLE": true}
	f.Fuzz(func(t *testing.T, body []byte) {
		for range 2 { // the second time through the fast path when the first planned it
			req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			var a struct {
				Data   json.RawMessage `json:"data"`
				Errors []struct {
					Extensions map[string]any `json:"extensions"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
				t.Fatalf("answer %d is not JSON: %q", rec.Code, rec.Body.Bytes())
			}
			for _, e := range a.Errors {
				if c, _ := e.Extensions["code"].(string); !codes[c] {
					t.Fatalf("error without a contract code: %s", rec.Body.Bytes())
				}
			}
			if len(a.Errors) == 0 && len(a.Data) == 0 {
				t.Fatalf("neither data nor errors: %s", rec.Body.Bytes())
			}
		}
	})
}

// FuzzDecodePull holds the client's one-pass page decoder to encoding/json:
// whenever it takes a body, it reads exactly what genqlient's decoding reads.
func FuzzDecodePull(f *testing.F) {
	f.Add([]byte(`{"data":{"pull":{"records":[{"kind":"todo","id":"a\"b","updatedAt":"2026-11-24T19:41:55.123456Z","deletedAt":null,"editedAt":"2026-11-24T19:41:55Z","data":{"x":[1,{"y":"é\\n"}],"n":-1.5e3}}],"nextPageToken":"t","remaining":3}}}`))
	f.Add([]byte(`{"data":{"pull":{"records":[],"nextPageToken":null,"remaining":null}}}`))
	f.Add([]byte(`{"errors":[{"message":"x","extensions":{"code":"NOT_FOUND"}}],"data":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, slow, took, slowErr := gql.DecodePullBoth(body)
		if !took {
			return
		}
		if slowErr != nil {
			t.Fatalf("the one-pass decoder took a body encoding/json refuses (%v): %q", slowErr, body)
		}
		if !bytes.Equal(fast, slow) {
			t.Fatalf("decoders differ on %q\nfast: %s\nslow: %s", body, fast, slow)
		}
	})
}

// FuzzScanOps holds the one-pass decoding of a push's ops and of the
// request envelope to encoding/json: whenever the scanner takes an input,
// it reads exactly what encoding/json reads.
func FuzzScanOps(f *testing.F) {
	f.Add([]byte(`{"ops":[{"opId":"a\u00e9","kind":"todo","id":"x","type":"UPSERT","payload":{"a":[1,{"b":null}],"c":"\n"},"baseUpdatedAt":"2026-11-24T19:41:55.123456Z","editedAt":null,"force":true}]}`))
	f.Add([]byte(`{"ops":[{"opId":"a","kind":"t","id":"x","type":"DELETE","payload":null,"force":false}]}`))
	f.Add([]byte(`{"ops":[]}`))
	f.Add([]byte(`{"query":"mutation($ops: [OpInput!]!) { push(ops: $ops) { opId } }","variables":{"ops":[]},"operationName":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		scanned, decoded, took, ok := gql.DecodeOpsBoth(raw, "ops")
		if took && (!ok || !bytes.Equal(scanned, decoded)) {
			t.Fatalf("ops decoders differ on %q (json ok %v)\nscan: %s\njson: %s", raw, ok, scanned, decoded)
		}
		es, ed, etook, err := gql.ScanEnvelopeBoth(raw)
		if etook && (err != nil || !bytes.Equal(es, ed)) {
			t.Fatalf("envelope decoders differ on %q (json err %v)\nscan: %s\njson: %s", raw, err, es, ed)
		}
	})
}

var _ = core.ErrInvalid
