package ui_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
	"github.com/offsync/offsync/server/ui"
)

const (
	adminToken = "root-secret"
	userToken  = "alice-secret"
)

var principals = map[string]core.Principal{
	adminToken: {ID: "ops", Attrs: map[string]string{"role": server.AdminRole}},
	userToken:  {ID: "alice"},
}

// newDashboard serves a dashboard over a fresh SQLite authority serving
// "note" and "task", with an administrator's token and a user's.
func newDashboard(t *testing.T) (*server.Service, *httptest.Server) {
	t.Helper()
	return newDashboardWith(t, nil)
}

// newDashboardWith is newDashboard with a scope for every principal.
func newDashboardWith(t *testing.T, scope func(context.Context, core.Principal, string) (*core.Filter, error)) (*server.Service, *httptest.Server) {
	t.Helper()
	ctx := t.Context()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "authority.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc, err := server.New(ctx, st, &server.Options{
		Tables: []core.Table{core.Documents("note"), core.Documents("task")},
		Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
			if p, ok := principals[tok]; ok {
				return p, nil
			}
			return core.Principal{}, fmt.Errorf("%w: unknown token", core.ErrUnauthorized)
		},
		Scope: scope,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	d, err := ui.New(ctx, svc, st, &ui.Options{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	return svc, srv
}

func get(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// pushAs writes through the authority as the given principal.
func pushAs(t *testing.T, svc *server.Service, p core.Principal, ops ...core.Op) []core.PushResult {
	t.Helper()
	res, err := svc.Push(core.WithPrincipal(t.Context(), p), ops)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func upsert(opID, kind, id, payload string) core.Op {
	return core.Op{OpID: opID, Kind: kind, ID: id, Type: core.OpUpsert, Payload: json.RawMessage(payload)}
}

// Without an administrator's token, nothing of the dashboard is served: the
// page is the sign-in form with a 401, and every API answers 401 (403 for a
// principal who is not an administrator) with no figure in it.
func TestDashboardNeedsAnAdministrator(t *testing.T) {
	svc, srv := newDashboard(t)
	pushAs(t, svc, principals[userToken], upsert("o1", "note", "secret-note-id", `{"title":"x"}`))

	for _, path := range []string{"/", "/api/snapshot", "/api/events", "/api/nope", "/app.js"} {
		for _, tc := range []struct {
			token  string
			status int
		}{
			{"", http.StatusUnauthorized},
			{"wrong", http.StatusUnauthorized},
			{userToken, http.StatusForbidden},
		} {
			resp, body := get(t, srv.URL+path, tc.token)
			if resp.StatusCode != tc.status {
				t.Errorf("GET %s with token %q: %d, want %d", path, tc.token, resp.StatusCode, tc.status)
			}
			for _, leak := range []string{"secret-note-id", `"tombstones":`, `"transports":`} {
				if strings.Contains(body, leak) {
					t.Errorf("GET %s with token %q: the answer holds %q:\n%s", path, tc.token, leak, body)
				}
			}
			if tc.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s with token %q: a 401 without WWW-Authenticate", path, tc.token)
			}
		}
	}
	// The 401 of the page is the sign-in form.
	resp, body := get(t, srv.URL+"/", "")
	if !strings.Contains(body, `id="signin"`) || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET / without a token: %s %q, want the sign-in page", resp.Header.Get("Content-Type"), body)
	}
	// Only GET reads the page without a token.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader("x"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST / without a token: %v %v, want 401", resp, err)
	}

	// The administrator reads it all.
	for _, path := range []string{"/", "/api/snapshot"} {
		if resp, body := get(t, srv.URL+path, adminToken); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s as the administrator: %d %s", path, resp.StatusCode, body)
		}
	}
}

// The page runs only its own inlined script and style: the
// Content-Security-Policy names their hashes and allows nothing else.
func TestPagePolicyAllowsExactlyItsScriptAndStyle(t *testing.T) {
	_, srv := newDashboard(t)
	resp, body := get(t, srv.URL+"/", "")
	policy := resp.Header.Get("Content-Security-Policy")
	for _, tag := range []string{"script", "style"} {
		m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(body, -1)
		if len(m) != 1 {
			t.Fatalf("%d <%s> elements, want 1", len(m), tag)
		}
		if len(strings.TrimSpace(m[0][1])) < 100 {
			t.Fatalf("<%s> is (nearly) empty: the asset was not inlined", tag)
		}
		sum := sha256.Sum256([]byte(m[0][1]))
		want := tag + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "';"
		if !strings.Contains(policy, want) {
			t.Errorf("policy %q lacks %q", policy, want)
		}
	}
	for _, want := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(policy, want) {
			t.Errorf("policy %q lacks %q", policy, want)
		}
	}
	if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("the page loads something from elsewhere")
	}
}

func snapshot(t *testing.T, srv *httptest.Server) ui.Snapshot {
	t.Helper()
	resp, body := get(t, srv.URL+"/api/snapshot", adminToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("snapshot: %d %s", resp.StatusCode, body)
	}
	var s ui.Snapshot
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func kindView(t *testing.T, s ui.Snapshot, kind string) ui.KindView {
	t.Helper()
	for _, k := range s.Kinds {
		if k.Kind == kind {
			return k
		}
	}
	t.Fatalf("kind %s not in %+v", kind, s.Kinds)
	return ui.KindView{}
}

// The snapshot counts live rows and tombstones per kind in the store, and
// joins the authority's statistics (conflicts and rejections per kind).
func TestSnapshotCountsRowsTombstonesAndAnswers(t *testing.T) {
	svc, srv := newDashboard(t)
	alice := principals[userToken]
	s := snapshot(t, srv)
	if n := kindView(t, s, "note"); n.Rows != 0 || n.Tombstones != 0 {
		t.Fatalf("empty note: %+v", n)
	}
	res := pushAs(t, svc, alice,
		upsert("o1", "note", "n1", `{"t":1}`), upsert("o2", "note", "n2", `{"t":2}`),
		upsert("o3", "note", "n3", `{"t":3}`), upsert("o4", "task", "t1", `{"t":4}`))
	pushAs(t, svc, alice, core.Op{OpID: "o5", Kind: "note", ID: "n3", Type: core.OpDelete, BaseUpdatedAt: res[2].Record.UpdatedAt})
	// A stale base is a conflict.
	pushAs(t, svc, alice, core.Op{OpID: "o6", Kind: "note", ID: "n1", Type: core.OpUpsert, Payload: json.RawMessage(`{"t":9}`),
		BaseUpdatedAt: res[0].Record.UpdatedAt.Add(-time.Second)})

	s = snapshot(t, srv)
	note, task := kindView(t, s, "note"), kindView(t, s, "task")
	if note.Rows != 2 || note.Tombstones != 1 || task.Rows != 1 || task.Tombstones != 0 {
		t.Fatalf("note %+v, task %+v: want 2 rows and 1 tombstone, 1 row", note, task)
	}
	if note.Traffic.Applied != 4 || note.Traffic.Conflict != 1 || task.Traffic.Applied != 1 {
		t.Fatalf("traffic: note %+v, task %+v", note.Traffic, task.Traffic)
	}
	if s.Stats.Transports[server.TransportDirect].Requests.Push != 3 {
		t.Fatalf("stats %+v: want 3 pushes", s.Stats.Transports)
	}
}

// event is one block of the live stream.
type event struct {
	name string
	data string
}

func readEvents(t *testing.T, body io.Reader) <-chan event {
	t.Helper()
	ch := make(chan event, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(body)
		sc.Buffer(nil, 1<<20)
		var e event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.name != "" {
					ch <- e
				}
				e = event{}
			case strings.HasPrefix(line, "event: "):
				e.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				e.data += strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return ch
}

// next waits for the next event of a name, skipping others; a test
// deadline bounds it.
func next(t *testing.T, ch <-chan event, name string, v any) {
	t.Helper()
	// A bound that fails a stuck stream instead of hanging the run; no
	// figure depends on it.
	stuck := time.NewTimer(time.Minute)
	defer stuck.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("the stream ended before a %s event", name)
			}
			if e.name != name {
				continue
			}
			if err := json.Unmarshal([]byte(e.data), v); err != nil {
				t.Fatalf("%s event %q: %v", name, e.data, err)
			}
			return
		case <-stuck.C:
			t.Fatalf("no %s event within a minute", name)
		}
	}
}

// The live stream sends a snapshot at once, then each change of the feed
// (every one, even when notices are coalesced) and a snapshot with the new
// counts — with no interval passing (the test's interval is an hour).
func TestEventsStreamChangesAndCounts(t *testing.T) {
	svc, srv := newDashboard(t)
	alice := principals[userToken]
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	ch := openEvents(t, req)
	var s ui.Snapshot
	next(t, ch, "snapshot", &s)
	if n := kindView(t, s, "note"); n.Rows != 0 {
		t.Fatalf("first snapshot: %+v", n)
	}

	res := pushAs(t, svc, alice, upsert("o1", "note", "n1", `{"t":1}`))
	var c ui.Change
	next(t, ch, "change", &c)
	if c.Kind != "note" || c.ID != "n1" || !c.Version.Equal(res[0].Record.UpdatedAt) || c.Deleted {
		t.Fatalf("change %+v, want note/n1 at %v", c, res[0].Record.UpdatedAt)
	}
	// Three writes in one batch: one notice, three changes read from the feed.
	pushAs(t, svc, alice, upsert("o2", "note", "n2", `{}`), upsert("o3", "note", "n3", `{}`),
		core.Op{OpID: "o4", Kind: "note", ID: "n1", Type: core.OpDelete, BaseUpdatedAt: res[0].Record.UpdatedAt})
	var got []string
	for len(got) < 3 {
		next(t, ch, "change", &c)
		got = append(got, fmt.Sprintf("%s/%s deleted=%v", c.Kind, c.ID, c.Deleted))
	}
	if want := []string{"note/n2 deleted=false", "note/n3 deleted=false", "note/n1 deleted=true"}; strings.Join(got, ";") != strings.Join(want, ";") {
		t.Fatalf("changes %q, want %q", got, want)
	}
	// The rates add up, snapshot after snapshot, to what was pushed since
	// the first (whose stats were empty): some of them are positive.
	var maxRate float64
	for {
		next(t, ch, "snapshot", &s)
		if s.Rates == nil {
			t.Fatalf("a later snapshot without rates: %+v", s)
		}
		maxRate = max(maxRate, s.Rates.PushedOps)
		if n := kindView(t, s, "note"); n.Rows == 2 && n.Tombstones == 1 && n.Traffic.Applied == 4 {
			break
		}
	}
	if maxRate <= 0 {
		t.Fatalf("no snapshot measured a push rate")
	}
}

func openEvents(t *testing.T, req *http.Request) <-chan event {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return readEvents(t, resp.Body)
}

// Where the administrator's own scope is filtered, its notices name only
// the kind; the stream still lists each change, read from the feed.
func TestEventsStreamWithAScopedAdministrator(t *testing.T) {
	svc, srv := newDashboardWith(t, func(_ context.Context, p core.Principal, _ string) (*core.Filter, error) {
		return &core.Filter{Field: "owner", Values: []string{p.ID}}, nil
	})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	ch := openEvents(t, req)
	var s ui.Snapshot
	next(t, ch, "snapshot", &s)
	alice := principals[userToken]
	pushAs(t, svc, alice, upsert("o1", "note", "n1", `{}`))
	pushAs(t, svc, alice, upsert("o2", "note", "n2", `{}`), upsert("o3", "task", "t1", `{}`))
	got := map[string]bool{}
	for len(got) < 3 {
		var c ui.Change
		next(t, ch, "change", &c)
		if c.ID == "" {
			t.Fatalf("change %+v without its id", c)
		}
		if got[c.Kind+"/"+c.ID] {
			t.Fatalf("change %+v listed twice", c)
		}
		got[c.Kind+"/"+c.ID] = true
	}
	if !got["note/n1"] || !got["note/n2"] || !got["task/t1"] {
		t.Fatalf("changes %v", got)
	}
}

func TestNewRefusesBadArguments(t *testing.T) {
	if _, err := ui.New(t.Context(), nil, nil, nil); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Fatalf("New(nil, nil): %v", err)
	}
}
