package rest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

// newAuthority returns a server.Service over a SQLite file serving any
// lower-case kind as documents.
func newAuthority(t testing.TB, opts *server.Options) *server.Service {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "authority.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var o server.Options
	if opts != nil {
		o = *opts
	}
	if o.DynamicKinds == nil && o.Tables == nil {
		o.DynamicKinds = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	}
	svc, err := server.New(ctx, st, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// recorder counts requests by "METHOD /path" in front of a handler.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	seen map[string]int
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	key := req.Method + " " + req.URL.Path
	if len(req.URL.Path) > 1 {
		// Collapse /kind/id to /kind/* and /kind to /kind.
		if i := indexByte(req.URL.Path[1:], '/'); i >= 0 {
			key = req.Method + " " + req.URL.Path[:i+1] + "/*"
		}
	}
	r.mu.Lock()
	if r.seen == nil {
		r.seen = map[string]int{}
	}
	r.seen[key]++
	r.mu.Unlock()
	r.next.ServeHTTP(w, req)
}

func (r *recorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[key]
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// serve runs h on 127.0.0.1:0 behind a request recorder.
func serve(t testing.TB, h http.Handler) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{next: h}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return srv, rec
}

// stack is a real server over SQLite behind the REST handler, and a client.
type stack struct {
	svc    *server.Service
	srv    *httptest.Server
	rec    *recorder
	client *rest.Client
}

func newStack(t testing.TB, sopts *server.Options, copts *rest.Options) *stack {
	t.Helper()
	svc := newAuthority(t, sopts)
	srv, rec := serve(t, rest.NewHandler(svc, nil))
	return &stack{svc: svc, srv: srv, rec: rec, client: rest.NewClient(srv.URL, copts)}
}

func upsert(opID, kind, id string, payload string) core.Op {
	return core.Op{OpID: opID, Kind: kind, ID: id, Type: core.OpUpsert, Payload: json.RawMessage(payload)}
}

func mustPush(t testing.TB, c core.Transport, ops ...core.Op) []core.PushResult {
	t.Helper()
	res, err := c.Push(context.Background(), ops)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	if len(res) != len(ops) {
		t.Fatalf("push: %d results for %d ops", len(res), len(ops))
	}
	return res
}

// pullAll walks a kind's whole feed from after.
func pullAll(t testing.TB, c core.Transport, kind string, after core.Cursor, limit int) []core.Record {
	t.Helper()
	var out []core.Record
	req := core.PullRequest{Kind: kind, After: after, Limit: limit}
	for range 10000 {
		page, err := c.Pull(context.Background(), req)
		if err != nil {
			t.Fatalf("pull %s: %v", kind, err)
		}
		out = append(out, page.Records...)
		if page.NextPageToken == "" {
			return out
		}
		req.PageToken = page.NextPageToken
	}
	t.Fatal("pull never ended")
	return nil
}

func fields(t testing.TB, r core.Record) map[string]any {
	t.Helper()
	m, err := r.Fields()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var testTimeout = 10 * time.Second

func errorsIs(err, target error) bool { return errors.Is(err, target) }
