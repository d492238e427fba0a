package graphql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	gql "github.com/offsync/offsync/drivers/transport/graphql"
	"github.com/offsync/offsync/server"
)

// fixed is an authority with fixed answers: the same request gets the same
// bytes from both paths.
type fixed struct{ fail error }

var fixedAt = time.Date(2026, 11, 24, 19, 41, 55, 123456000, time.UTC)

func (f fixed) Pull(_ context.Context, req core.PullRequest) (core.Page, error) {
	if f.fail != nil {
		return core.Page{}, f.fail
	}
	p := core.Page{Remaining: -1}
	for i := range 3 {
		r := core.Record{Kind: req.Kind, ID: fmt.Sprintf("id-%d \"q\"", i), UpdatedAt: fixedAt.Add(time.Duration(i) * time.Microsecond),
			Data: json.RawMessage(fmt.Sprintf(`{"n":%d,"s":"é\u2028<>&"}`, i))}
		if i == 1 {
			r.DeletedAt, r.EditedAt = fixedAt, fixedAt.Add(-time.Hour)
		}
		p.Records = append(p.Records, r)
	}
	if req.PageToken == "" {
		p.NextPageToken, p.Remaining = "tok/1+=", 7
	}
	return p, nil
}

func (f fixed) Push(_ context.Context, ops []core.Op) ([]core.PushResult, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	out := make([]core.PushResult, len(ops))
	for i, op := range ops {
		rec := &core.Record{Kind: op.Kind, ID: op.ID, UpdatedAt: fixedAt, EditedAt: op.EditedAt, Data: op.Payload}
		r := core.PushResult{OpID: op.OpID}
		switch i % 6 {
		case 0:
			r.Status, r.Record = core.StatusApplied, rec
		case 1:
			r.Status, r.Record = core.StatusConflict, rec
		case 2:
			r.Status = core.StatusNotFound
		case 3:
			r.Status, r.Reason, r.Permanent = core.StatusRejected, "no \"way\"", i%2 == 0
		case 4:
			r.Status, r.Reason = core.StatusSkipped, "skipped"
		case 5:
			r.Status, r.Reason, r.RetryAfter = core.StatusRetry, "busy", 1500*time.Millisecond
		}
		out[i] = r
	}
	return out, nil
}

func rawPost(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// The fast path answers exactly what gqlgen's executor answers. (One
// difference is by design and kept out of the payloads here: the fast path
// hands a payload's bytes to the authority as the client sent them, where
// the executor decodes and re-encodes them, sorting keys and writing
// escapes its own way — the same JSON object either way.)
func TestFastPathMatchesExecutor(t *testing.T) {
	for _, auth := range []fixed{{}, {fail: fmt.Errorf("server: %w: 9 ops in one push, at most 3", core.ErrTooLarge)}} {
		fast := gql.NewServer(auth, server.TransportConfig{}, nil)
		slow := gql.NewServer(auth, server.TransportConfig{}, nil)
		gql.SetSlow(slow, true)
		fs, ss := httptest.NewServer(fast), httptest.NewServer(slow)
		ops := []any{}
		for i := range 7 {
			op := map[string]any{"opId": fmt.Sprint("op-", i), "kind": "todo", "id": fmt.Sprint("r", i), "type": "UPSERT",
				"payload": map[string]any{"a": []any{"x", 2.5}, "s": "é\"\\", "z": 1}}
			if i == 2 {
				op["type"], op["payload"] = "DELETE", nil
			}
			if i == 3 {
				op["baseUpdatedAt"], op["editedAt"], op["force"] = "2026-11-24T19:41:55.123456Z", "2026-11-24T20:41:55+01:00", true
			}
			ops = append(ops, op)
		}
		bodies := []string{
			request(`query($k: String!, $l: Int) { pull(kind: $k, limit: $l) { records { kind id updatedAt deletedAt editedAt data } nextPageToken remaining } }`, map[string]any{"k": "todo", "l": 2}),
			request(`query Pull($kind: String!, $after: Cursor, $pageToken: String, $limit: Int) { pull(kind: $kind, after: $after, pageToken: $pageToken, limit: $limit) { remaining records { data id } nextPageToken } }`,
				map[string]any{"kind": "todo", "after": map[string]any{"updatedAt": "2026-11-24T19:41:55.123456Z", "id": "x"}}),
			request(`{ pull(kind: "todo", pageToken: "p") { nextPageToken records { updatedAt } } }`, nil),
			request(`{ pull(kind: "todo") { records { id } } }`, nil),
			request(`mutation($ops: [OpInput!]!) { push(ops: $ops) { opId status error message permanent retryAfterMs record { kind id updatedAt deletedAt editedAt data } current { id updatedAt data } } }`, map[string]any{"ops": ops}),
			request(`mutation Push($o: [OpInput!]!) { push(ops: $o) { status record { data } opId } }`, map[string]any{"o": ops}),
			request(`mutation($ops: [OpInput!]!) { push(ops: $ops) { opId } }`, map[string]any{"ops": []any{}}),
		}
		for _, body := range bodies {
			for range 2 { // the first request of a query text plans it, the second takes the fast path
				fst, fb := rawPost(t, fs.URL, body)
				sst, sb := rawPost(t, ss.URL, body)
				if fst != sst || !bytes.Equal(fb, sb) {
					t.Errorf("request %s\nfast: %d %s\nslow: %d %s", body, fst, fb, sst, sb)
				}
			}
		}
		fs.Close()
		ss.Close()
	}
}
