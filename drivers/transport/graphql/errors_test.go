package graphql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// answer is a decoded GraphQL answer.
type answer struct {
	status int
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// post sends body to url as a GraphQL request with an optional token.
func post(t *testing.T, url, body, token string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("answer %d is not JSON: %s", resp.StatusCode, b)
	}
	a.status = resp.StatusCode
	return a
}

// request encodes a GraphQL request body.
func request(query string, vars map[string]any) string {
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return string(b)
}

const pushMutation = `mutation($ops: [OpInput!]!) { push(ops: $ops) { opId status error record { id updatedAt } } }`

func upsertVars(opID, id string, payload any) map[string]any {
	return map[string]any{"ops": []any{map[string]any{"opId": opID, "kind": "todo", "id": id, "type": "UPSERT", "payload": payload}}}
}

// rows counts the authority's rows of kind (tombstones included).
func rows(t *testing.T, svc *server.Service, kind string) int {
	t.Helper()
	ctx := core.WithPrincipal(context.Background(), core.Principal{ID: "alice"})
	p, err := svc.Pull(ctx, core.PullRequest{Kind: kind, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(p.Records)
}

// healthy proves the server still serves: a push is applied.
func healthy(t *testing.T, url, token, id string) {
	t.Helper()
	a := post(t, url, request(pushMutation, upsertVars("op-"+id, id, map[string]any{"ok": true})), token)
	if a.status != 200 || len(a.Errors) > 0 || !bytes.Contains(a.Data, []byte(`"status":200`)) {
		t.Fatalf("the server is harmed: %d %s %+v", a.status, a.Data, a.Errors)
	}
}

func TestBadInput(t *testing.T) {
	svc := newAuthority(t, &server.Options{MaxBatch: 3, Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
		if tok != "good" {
			return core.Principal{}, fmt.Errorf("%w: unknown token", core.ErrUnauthorized)
		}
		return core.Principal{ID: "alice"}, nil
	}})
	l := serveOn(t, svc, "127.0.0.1:0", server.TransportConfig{Limits: server.Limits{MaxMessage: 64 << 10}})
	deep := "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } } } } }"
	var complex strings.Builder
	complex.WriteString("{")
	for i := range 300 {
		fmt.Fprintf(&complex, " h%d: health { status }", i)
	}
	complex.WriteString(" }")
	four := map[string]any{"ops": []any{}}
	for i := range 4 {
		four["ops"] = append(four["ops"].([]any), map[string]any{"opId": fmt.Sprint("b", i), "kind": "todo",
			"id": fmt.Sprint("b", i), "type": "UPSERT", "payload": map[string]any{"n": i}})
	}
	badTime := upsertVars("t1", "t1", map[string]any{"n": 1})
	badTime["ops"].([]any)[0].(map[string]any)["baseUpdatedAt"] = "2026-13-01 noon"
	cases := []struct {
		name, body, token string
		status            int
		code, message     string
	}{
		{"syntax error", `{"query":"{ pull(kind: \"todo\" { records { id } } }"}`, "good",
			400, "BAD_USER_INPUT", `Expected Name, found {`},
		{"unknown field", request(`{ health { status nope } }`, nil), "good",
			400, "BAD_USER_INPUT", `Cannot query field "nope" on type "Health".`},
		{"variable of the wrong type", request(`query($l: Int) { pull(kind: "todo", limit: $l) { records { id } } }`, map[string]any{"l": "ten"}), "good",
			400, "BAD_USER_INPUT", `cannot use string as Int`},
		{"over-deep query", request(deep, nil), "good",
			400, "BAD_USER_INPUT", `the operation is nested more than 15 levels deep`},
		{"over-complex query", request(complex.String(), nil), "good",
			400, "BAD_USER_INPUT", `operation has complexity 600, which exceeds the limit of 500`},
		{"batch over the limit", request(pushMutation, four), "good",
			200, "TOO_LARGE", `server: offsync: too large: 4 ops in one push, at most 3`},
		{"JSON scalar not an object", request(pushMutation, upsertVars("j1", "j1", []any{1, 2})), "good",
			200, "BAD_USER_INPUT", `offsync: invalid input: JSON must be an object, got an array`},
		{"JSON scalar a string", request(pushMutation, upsertVars("j2", "j2", "x")), "good",
			200, "BAD_USER_INPUT", `offsync: invalid input: JSON must be an object, got a string`},
		{"invalid Time", request(pushMutation, badTime), "good",
			200, "BAD_USER_INPUT", `offsync: invalid input: timestamp "2026-13-01 noon" is not RFC 3339`},
		{"body over MaxMessage", request(pushMutation, upsertVars("big", "big", map[string]any{"s": strings.Repeat("x", 70<<10)})), "good",
			413, "TOO_LARGE", `the body is over 65536 bytes`},
		{"bad token", request(pushMutation, upsertVars("a1", "a1", map[string]any{})), "bad",
			200, "UNAUTHENTICATED", `offsync: unauthorized: unknown token`},
		{"not JSON", `{"query": `, "good",
			400, "BAD_USER_INPUT", `the body is not a GraphQL request ({"query":...,"variables":{...}}): unexpected EOF`},
		{"subscription over POST", request(`subscription { changes(kinds: ["todo"]) { ready } }`, nil), "good",
			400, "BAD_USER_INPUT", `a subscription needs a graphql-transport-ws socket`},
		{"limit zero", request(`{ pull(kind: "todo", limit: 0) { records { id } } }`, nil), "good",
			200, "BAD_USER_INPUT", `offsync: invalid input: limit must be positive, got 0`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, l.URL(), tc.body, tc.token)
			if len(a.Errors) == 0 {
				t.Fatalf("no error: %d %s", a.status, a.Data)
			}
			e := a.Errors[0]
			if a.status != tc.status || e.Extensions["code"] != tc.code || e.Message != tc.message {
				t.Errorf("got %d %v %q\nwant %d %s %q", a.status, e.Extensions["code"], e.Message, tc.status, tc.code, tc.message)
			}
			if n := rows(t, svc, "todo"); n != 0 {
				t.Errorf("%d rows written", n)
			}
		})
	}
	healthy(t, l.URL(), "good", "after")
	if n := rows(t, svc, "todo"); n != 1 {
		t.Errorf("%d rows after the healthy push, want 1", n)
	}
}

// wsDial opens a graphql-transport-ws socket on l.
func wsDial(t *testing.T, l *live) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+l.addr+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func wsSend(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	if err := c.Write(context.Background(), websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// wsClosed reads until the socket closes and returns its close error.
func wsClosed(t *testing.T, c *websocket.Conn) websocket.CloseError {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("the socket ended without a close frame: %v", err)
			}
			return ce
		}
		t.Logf("before the close: %s", msg)
	}
}

func TestSocketBadInput(t *testing.T) {
	svc := newAuthority(t, &server.Options{Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
		if tok != "good" {
			return core.Principal{}, fmt.Errorf("%w: unknown token", core.ErrUnauthorized)
		}
		return core.Principal{ID: "alice"}, nil
	}})
	l := serve(t, svc)
	sub := `{"id":"1","type":"subscribe","payload":{"query":"subscription { changes(kinds: [\"todo\"]) { ready kind } }"}}`
	t.Run("subscription before connection_init", func(t *testing.T) {
		c := wsDial(t, l)
		wsSend(t, c, sub)
		ce := wsClosed(t, c)
		if ce.Code != 4401 || ce.Reason != "Unauthorized" {
			t.Errorf("closed %d %q, want 4401 Unauthorized", ce.Code, ce.Reason)
		}
	})
	t.Run("bad token in connection_init", func(t *testing.T) {
		c := wsDial(t, l)
		wsSend(t, c, `{"type":"connection_init","payload":{"Authorization":"Bearer bad"}}`)
		ce := wsClosed(t, c)
		want := "UNAUTHENTICATED: offsync: unauthorized: unknown token"
		if ce.Code != 4403 || ce.Reason != want {
			t.Errorf("closed %d %q, want 4403 %q", ce.Code, ce.Reason, want)
		}
	})
	t.Run("malformed Authorization in connection_init", func(t *testing.T) {
		c := wsDial(t, l)
		wsSend(t, c, `{"type":"connection_init","payload":{"Authorization":"Basic Zm9v"}}`)
		ce := wsClosed(t, c)
		want := "UNAUTHENTICATED: offsync: unauthorized: authorization must be `Bearer <token>`"
		if ce.Code != 4403 || ce.Reason != want {
			t.Errorf("closed %d %q, want 4403 %q", ce.Code, ce.Reason, want)
		}
	})
	t.Run("unknown kind", func(t *testing.T) {
		c := wsDial(t, l)
		wsSend(t, c, `{"type":"connection_init","payload":{"Authorization":"Bearer good"}}`)
		wsSend(t, c, `{"id":"1","type":"subscribe","payload":{"query":"subscription { changes(kinds: [\"Bad Kind\"]) { ready } }"}}`)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			_, msg, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				Type    string          `json:"type"`
				Payload json.RawMessage `json:"payload"`
			}
			_ = json.Unmarshal(msg, &m)
			if m.Type == "connection_ack" || m.Type == "ping" {
				continue
			}
			if (m.Type != "next" && m.Type != "error") || !bytes.Contains(m.Payload, []byte(`"code":"NOT_FOUND"`)) {
				t.Fatalf("got %s, want an error NOT_FOUND", msg)
			}
			t.Logf("%s", msg)
			return
		}
	})
	healthy(t, l.URL(), "good", "after")
}
