package rest_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

// limitsStack is the authority over a SQLite file behind the REST handler
// on 127.0.0.1:0, scoped like the attack: tokens alice and bob each
// see the notes they own; doc_* kinds are dynamic.
type limitsStack struct {
	st  *sqlite.Store
	svc *server.Service
	url string
}

func newLimitsStack(t *testing.T, tweak func(*server.Options)) *limitsStack {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "authority.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o := server.Options{
		Tables:       []core.Table{core.Documents("note")},
		DynamicKinds: regexp.MustCompile(`^doc_`),
		Authenticate: func(ctx context.Context, tok string) (core.Principal, error) {
			if tok == "alice" || tok == "bob" {
				return core.Principal{ID: tok}, nil
			}
			return core.Principal{}, core.ErrUnauthorized
		},
		Scope: func(ctx context.Context, p core.Principal, kind string) (*core.Filter, error) {
			if kind != "note" {
				return nil, nil
			}
			return &core.Filter{Field: "owner", Values: []string{p.ID}}, nil
		},
	}
	if tweak != nil {
		tweak(&o)
	}
	svc, err := server.New(t.Context(), st, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	srv := httptest.NewServer(rest.NewHandler(svc, nil))
	t.Cleanup(srv.Close)
	return &limitsStack{st: st, svc: svc, url: srv.URL}
}

// do sends one request as token and returns the status and body.
func (s *limitsStack) do(t *testing.T, token, method, path, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func key(k string) map[string]string { return map[string]string{"X-Idempotency-Key": k} }

// Defect 1: a payload nested 1100 levels deep is refused with a 4xx and
// the scoped feed keeps serving every principal (it used to be stored, and
// every scoped pull of the kind then failed with 503).
func TestRESTDeepPayloadRefused(t *testing.T) {
	s := newLimitsStack(t, nil)
	deep := `{"x":` + strings.Repeat("[", 1100) + strings.Repeat("]", 1100) + `}`
	if st, body := s.do(t, "alice", "PUT", "/note/deep", deep, key("k1")); st != 400 {
		t.Fatalf("PUT of a 1100-level body: %d %s, want 400", st, body)
	}
	if st, body := s.do(t, "alice", "PUT", "/note/deep65", `{"x":`+strings.Repeat("[", 64)+strings.Repeat("]", 64)+`}`, key("k4")); st != 400 {
		t.Fatalf("PUT of a 65-level body: %d %s, want 400", st, body)
	}
	batch := `{"ops":[{"opId":"k2","kind":"note","id":"deep2","type":"upsert","payload":` + deep + `}]}`
	if st, body := s.do(t, "alice", "POST", "/batch", batch, nil); st != 200 || !strings.Contains(body, `"status":422`) {
		t.Fatalf("a batch op of a 1100-level payload: %d %s, want its op answered 422", st, body)
	}
	if st, body := s.do(t, "alice", "PUT", "/note/ok", `{"t":1}`, key("k3")); st != 200 {
		t.Fatalf("PUT ok: %d %s", st, body)
	}
	for _, who := range []string{"alice", "bob"} {
		st, body := s.do(t, who, "GET", "/note?limit=10", "", nil)
		if st != 200 {
			t.Fatalf("%s's scoped pull: %d %s", who, st, body)
		}
		if strings.Contains(body, "deep") {
			t.Fatalf("%s's pull shows the refused record: %s", who, body)
		}
	}
}

// Defect 2: ids over 256 bytes, NUL and invalid UTF-8 in ids, kinds over
// 64 bytes are 400 (never a 503 carrying SQL), on every route.
func TestRESTIDAndKindLimits(t *testing.T) {
	s := newLimitsStack(t, nil)
	long := strings.Repeat("i", core.MaxIDBytes+1)
	longKind := "doc_" + strings.Repeat("k", core.MaxKindBytes)
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/note/" + long, `{}`},
		{"PUT", "/note/a%00b", `{}`},
		{"PUT", "/note/a%FFb", `{}`},
		{"DELETE", "/note/" + long, ``},
		{"DELETE", "/note/a%00b", ``},
		{"GET", "/note/" + long, ``},
		{"GET", "/note/a%00b", ``},
		{"GET", "/note?updatedSince=2026-01-01T00:00:00Z&afterId=" + long, ``},
		{"GET", "/note?updatedSince=2026-01-01T00:00:00Z&afterId=a%00", ``},
		{"GET", "/" + longKind, ``},
		{"GET", "/" + longKind + "/x", ``},
		{"PUT", "/" + longKind + "/x", `{}`},
		{"GET", "/events?kinds=" + longKind, ``},
	} {
		st, body := s.do(t, "alice", c.method, c.path, c.body, key("k-"+c.method))
		if st != 400 {
			t.Errorf("%s %.60s: %d %s, want 400", c.method, c.path, st, body)
		}
		if strings.Contains(strings.ToLower(body), "sql") {
			t.Errorf("%s %.60s: the answer speaks of SQL: %s", c.method, c.path, body)
		}
	}
	if st, body := s.do(t, "alice", "PUT", "/note/"+strings.Repeat("j", core.MaxIDBytes), `{}`, key("ok")); st != 200 {
		t.Errorf("PUT of an id of %d bytes: %d %s, want 200", core.MaxIDBytes, st, body)
	}
}

// Defect 3: bob's /events never names alice's records or their versions;
// the note's event names only the kind, an unscoped kind's event is whole.
func TestRESTEventsObeyScope(t *testing.T) {
	s := newLimitsStack(t, nil)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.url+"/events?kinds=note,doc_marker", nil)
	req.Header.Set("Authorization", "Bearer bob")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("events: %d", res.StatusCode)
	}
	if st, body := s.do(t, "alice", "PUT", "/note/secret", `{"text":"alice only"}`, key("s1")); st != 200 {
		t.Fatalf("alice's PUT: %d %s", st, body)
	}
	if st, body := s.do(t, "alice", "PUT", "/doc_marker/m", `{}`, key("s2")); st != 200 {
		t.Fatalf("alice's marker: %d %s", st, body)
	}
	sc := bufio.NewScanner(res.Body)
	var events []string
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		events = append(events, line)
		if strings.Contains(line, "doc_marker") {
			break
		}
	}
	if len(events) == 0 || !strings.Contains(events[len(events)-1], `"id":"m"`) {
		t.Fatalf("events %q: want the marker's, whole, last", events)
	}
	for _, e := range events[:len(events)-1] {
		if strings.Contains(e, "secret") || strings.Contains(e, "updated_at") {
			t.Errorf("bob's event %s names alice's record or its version", e)
		}
	}
	if !slices.Contains(events, `data: {"kind":"note"}`) {
		t.Errorf("events %q: want the note's, naming only the kind", events)
	}
}

// Defect 4: reads never register a dynamic kind; the number of dynamic
// kinds created is capped.
func TestRESTDynamicKinds(t *testing.T) {
	s := newLimitsStack(t, func(o *server.Options) { o.MaxDynamicKinds = 2 })
	for i := range 20 {
		if st, body := s.do(t, "alice", "GET", fmt.Sprintf("/doc_read%d?limit=5", i), "", nil); st != 200 || !strings.Contains(body, `"items":[]`) {
			t.Fatalf("pull of a new dynamic kind: %d %s, want an empty page", st, body)
		}
		if st, _ := s.do(t, "alice", "GET", fmt.Sprintf("/doc_read%d/x", i), "", nil); st != 404 {
			t.Fatalf("get in a new dynamic kind: %d, want 404", st)
		}
	}
	for _, tb := range s.st.Kinds() {
		if strings.HasPrefix(tb.Kind(), "doc_read") {
			t.Fatalf("a read registered %s", tb.Kind())
		}
	}
	for i, want := range []int{200, 200, 404} {
		st, body := s.do(t, "alice", "PUT", fmt.Sprintf("/doc_w%d/x", i), `{}`, key(fmt.Sprint("w", i)))
		if st != want {
			t.Fatalf("PUT creating dynamic kind %d: %d %s, want %d", i+1, st, body, want)
		}
	}
}

// A payload over the authority's MaxRecordBytes is 413 on PUT, refused for
// good inside a batch.
func TestRESTRecordSize(t *testing.T) {
	s := newLimitsStack(t, func(o *server.Options) { o.MaxRecordBytes = 1000 })
	big := fmt.Sprintf(`{"text":%q}`, strings.Repeat("x", 1000))
	if st, body := s.do(t, "alice", "PUT", "/note/big", big, key("b1")); st != 413 {
		t.Fatalf("PUT of a payload over MaxRecordBytes: %d %s, want 413", st, body)
	}
	batch := `{"ops":[{"opId":"b2","kind":"note","id":"big","type":"upsert","payload":` + big + `}]}`
	if st, body := s.do(t, "alice", "POST", "/batch", batch, nil); st != 200 || !strings.Contains(body, `"status":422`) {
		t.Fatalf("a batch op over MaxRecordBytes: %d %s, want it answered 422", st, body)
	}
	if st, body := s.do(t, "alice", "PUT", "/note/small", `{"text":"x"}`, key("b3")); st != 200 {
		t.Fatalf("PUT of a small payload: %d %s", st, body)
	}
}

// Defect 6: a page ends at the byte budget, and the next page continues.
func TestRESTPageByteBudget(t *testing.T) {
	s := newLimitsStack(t, func(o *server.Options) { o.MaxPageBytes = 3000 })
	for i := range 6 {
		body := fmt.Sprintf(`{"text":%q}`, strings.Repeat("x", 1000))
		if st, b := s.do(t, "alice", "PUT", fmt.Sprintf("/doc_big/n%d", i), body, key(fmt.Sprint("b", i))); st != 200 {
			t.Fatalf("PUT: %d %s", st, b)
		}
	}
	c := rest.NewClient(s.url, &rest.Options{Token: func(context.Context, bool) (string, error) { return "alice", nil }})
	req := core.PullRequest{Kind: "doc_big", Limit: 100}
	var ids []string
	for pages := 1; ; pages++ {
		p, err := c.Pull(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Records) > 2 {
			t.Fatalf("page %d has %d records of 1 KB, budget 3000 bytes", pages, len(p.Records))
		}
		for _, r := range p.Records {
			ids = append(ids, r.ID)
		}
		if p.NextPageToken == "" {
			break
		}
		req.PageToken = p.NextPageToken
	}
	if strings.Join(ids, ",") != "n0,n1,n2,n3,n4,n5" {
		t.Fatalf("the walk saw %v", ids)
	}
}

// Defect 8: a malformed query string is 400 (it served the first page);
// a key twice in a nested object is refused; a PUT without an idempotency
// key leaves no idempotency record (with a key it does).
func TestRESTSmallerDefects(t *testing.T) {
	s := newLimitsStack(t, nil)
	for _, path := range []string{"/note?pageToken=%%%%", "/note?limit=%zz", "/events?kinds=%%"} {
		if st, body := s.do(t, "alice", "GET", path, "", nil); st != 400 {
			t.Errorf("GET %s: %d %s, want 400", path, st, body)
		}
	}
	if st, body := s.do(t, "alice", "DELETE", "/note/x?_baseUpdatedAt=%%", "", nil); st != 400 {
		t.Errorf("DELETE with a malformed query: %d %s, want 400", st, body)
	}
	if st, body := s.do(t, "alice", "PUT", "/note/dup", `{"a":{"k":1,"k":2}}`, key("d1")); st != 400 {
		t.Errorf("PUT with a key twice in a nested object: %d %s, want 400", st, body)
	}
	batch := `{"ops":[{"opId":"d2","kind":"note","id":"dup2","type":"upsert","payload":{"a":[{"k":1,"k":2}]}}]}`
	if st, body := s.do(t, "alice", "POST", "/batch", batch, nil); st != 200 || !strings.Contains(body, `"status":422`) {
		t.Errorf("a batch op with a key twice in a nested object: %d %s, want it answered 422", st, body)
	}
	idem := func() int {
		var n int
		if err := s.st.DB().NewRaw("SELECT count(*) FROM offsync_idempotency").Scan(t.Context(), &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if st, body := s.do(t, "alice", "PUT", "/note/nokey", `{"x":1}`, nil); st != 200 {
		t.Fatalf("PUT without a key: %d %s", st, body)
	}
	if st, body := s.do(t, "alice", "DELETE", "/note/nokey", "", map[string]string{"X-Force-Delete": "true"}); st != 200 {
		t.Fatalf("DELETE without a key: %d %s", st, body)
	}
	if n := idem(); n != 0 {
		t.Errorf("%d idempotency records after a PUT and a DELETE without a key, want 0", n)
	}
	if st, body := s.do(t, "alice", "PUT", "/note/withkey", `{"x":1}`, key("kept")); st != 200 {
		t.Fatalf("PUT with a key: %d %s", st, body)
	}
	if n := idem(); n != 1 {
		t.Errorf("%d idempotency records after a PUT with a key, want 1", n)
	}
	// A malformed afterId encoding is refused too, not ignored.
	q := url.Values{"updatedSince": {"2026-01-01T00:00:00Z"}}
	if st, _ := s.do(t, "alice", "GET", "/note?"+q.Encode()+"&afterId=%G0", "", nil); st != 400 {
		t.Errorf("afterId=%%G0: %d, want 400", st)
	}
}
