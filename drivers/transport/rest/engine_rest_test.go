package rest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

// testCtx is bounded by the test's own deadline (go test -timeout), or by
// testTimeout when there is none.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx := t.Context()
	deadline, ok := t.Deadline()
	if ok {
		// Leave a tenth of the time to report the failure before go test
		// panics.
		deadline = deadline.Add(-time.Until(deadline) / 10)
	} else {
		deadline = time.Now().Add(testTimeout)
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	t.Cleanup(cancel)
	return ctx
}

// restReplica is a core.Engine over a SQLite file and a REST client.
type restReplica struct {
	eng   *core.Engine
	store *sqlite.Store
	docs  *core.DocWriter
}

func newRESTReplica(t *testing.T, url string, copts *rest.Options, kind string) *restReplica {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "replica.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	docs := core.Documents(kind)
	eng, err := core.NewEngine(ctx, st, rest.NewClient(url, copts), &core.Options{Tables: []core.Table{docs}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &restReplica{eng: eng, store: st, docs: core.DocsFor(eng, docs)}
}

func (r *restReplica) ops(t *testing.T) []core.Op {
	t.Helper()
	var ops []core.Op
	err := r.store.View(context.Background(), func(ctx context.Context, tx core.Tx) error {
		var err error
		ops, err = tx.Ops(ctx, core.OpFilter{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ops
}

// drain returns the events already delivered to sub.
func drain(sub *core.Subscription) []core.Event {
	var evs []core.Event
	for {
		select {
		case ev := <-sub.C:
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// rotatingTokens is a token source whose tokens "expire": the authority
// accepts only the newest one, and a refresh issues the next.
type rotatingTokens struct {
	mu       sync.Mutex
	current  string // what the source hands out without a refresh
	valid    string // what the authority accepts
	gen      int
	refresh  int
	failNext bool // a refresh yields a token the authority refuses too
}

func (r *rotatingTokens) token(_ context.Context, refresh bool) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if refresh {
		r.refresh++
		r.gen++
		r.current = "tok-" + string(rune('a'+r.gen))
		if !r.failNext {
			r.valid = r.current
		}
	}
	return r.current, nil
}

// expire makes the authority refuse the token in use.
func (r *rotatingTokens) expire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.valid = "none-yet"
}

func (r *rotatingTokens) authenticate(_ context.Context, tok string) (core.Principal, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if tok == "" || tok != r.valid {
		return core.Principal{}, core.ErrUnauthorized
	}
	return core.Principal{ID: "alice"}, nil
}

func (r *rotatingTokens) refreshes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refresh
}

// Invariant 9, the 401 part: an expired token is refreshed once and the
// push goes through without burning an attempt.
func TestEngineRefreshesAnExpiredTokenWithoutBurningAnAttempt(t *testing.T) {
	ctx := testCtx(t)
	toks := &rotatingTokens{current: "tok-a", valid: "tok-a"}
	s := newStack(t, &server.Options{Authenticate: toks.authenticate}, nil)
	r := newRESTReplica(t, s.srv.URL, &rest.Options{Token: toks.token}, "note")
	if err := r.docs.Put(ctx, "n1", map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.eng.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if toks.refreshes() != 0 {
		t.Fatalf("refreshed a valid token %d times", toks.refreshes())
	}

	toks.expire()
	if err := r.docs.Put(ctx, "n2", map[string]any{"v": 2}); err != nil {
		t.Fatal(err)
	}
	sub := r.eng.Subscribe(256)
	defer sub.Close()
	st, err := r.eng.Sync(ctx, core.PullKinds()) // push only: the push meets the 401
	if err != nil {
		t.Fatalf("sync after the token expired: %v", err)
	}
	if st.Pushed != 1 || st.Errors != 0 {
		t.Fatalf("stats %+v, want one op pushed and no error", st)
	}
	if toks.refreshes() != 1 {
		t.Fatalf("refreshed %d times, want once", toks.refreshes())
	}
	applied := 0
	for _, ev := range drain(sub) {
		switch ev := ev.(type) {
		case core.OpApplied:
			applied++
			if ev.Op.ID != "n2" || ev.Op.Attempts != 0 {
				t.Fatalf("applied op %s with %d attempts, want n2 with 0", ev.Op.ID, ev.Op.Attempts)
			}
		case core.SyncError, core.OpFailed:
			t.Fatalf("unexpected %T: %+v", ev, ev)
		}
	}
	if applied != 1 {
		t.Fatalf("%d OpApplied events", applied)
	}
	if ops := r.ops(t); len(ops) != 0 {
		t.Fatalf("outbox after the push: %+v", ops)
	}
	if rec, err := s.svc.Get(core.WithPrincipal(ctx, core.Principal{ID: "alice"}), "note", "n2"); err != nil || !strings.Contains(string(rec.Data), `"v":2`) {
		t.Fatalf("authority has %+v, %v", rec, err)
	}
}

// A token that stays invalid pauses pushing with an auth error event; the op
// stays in the outbox with no attempt burnt.
func TestEngineTokenThatStaysInvalidPausesPushing(t *testing.T) {
	ctx := testCtx(t)
	toks := &rotatingTokens{current: "tok-a", valid: "tok-a", failNext: true}
	s := newStack(t, &server.Options{Authenticate: toks.authenticate}, nil)
	r := newRESTReplica(t, s.srv.URL, &rest.Options{Token: toks.token}, "note")
	toks.expire()
	if err := r.docs.Put(ctx, "n1", map[string]any{"v": 1}); err != nil {
		t.Fatal(err)
	}
	sub := r.eng.Subscribe(256)
	defer sub.Close()
	for round := 1; round <= 2; round++ {
		_, err := r.eng.Sync(ctx, core.PullKinds())
		if !errors.Is(err, core.ErrUnauthorized) {
			t.Fatalf("round %d: sync: %v, want ErrUnauthorized", round, err)
		}
		var authErrs int
		for _, ev := range drain(sub) {
			switch ev := ev.(type) {
			case core.SyncError:
				if ev.Category != core.CategoryAuth || !ev.WillRetry {
					t.Fatalf("round %d: error event %+v, want a retryable auth error", round, ev)
				}
				authErrs++
			case core.OpFailed, core.OpApplied:
				t.Fatalf("round %d: unexpected %T: %+v", round, ev, ev)
			}
		}
		if authErrs == 0 {
			t.Fatalf("round %d: no SyncError event", round)
		}
		ops := r.ops(t)
		// The op may have reached the server (in flight: re-sent with the
		// same OpID), but it is neither dead nor charged an attempt.
		if len(ops) != 1 || ops[0].ID != "n1" || ops[0].Attempts != 0 ||
			(ops[0].State != core.StatePending && ops[0].State != core.StateInFlight) {
			t.Fatalf("round %d: outbox %+v, want n1 waiting with 0 attempts", round, ops)
		}
		if toks.refreshes() != round {
			t.Fatalf("round %d: %d refreshes, want one per sync", round, toks.refreshes())
		}
	}
	// Nothing reached the authority.
	if _, err := s.svc.Get(core.WithPrincipal(ctx, core.Principal{ID: "alice"}), "note", "n1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("authority: %v, want ErrNotFound", err)
	}
}

// Realtime over /events: B runs with Realtime() and no interval; a write
// synced by A reaches B through the change notice.
func TestRealtimeThroughEvents(t *testing.T) {
	ctx := testCtx(t)
	s := newStack(t, nil, nil)
	a := newRESTReplica(t, s.srv.URL, nil, "note")
	b := newRESTReplica(t, s.srv.URL, nil, "note")

	sub := b.eng.Subscribe(1024)
	defer sub.Close()
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- b.eng.Run(runCtx, core.Realtime()) }()
	defer func() {
		stop()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	}()
	// Run subscribes, then syncs once; after that sync the stream is in force.
	waitEvent(t, ctx, sub, func(ev core.Event) bool { _, ok := ev.(core.SyncCompleted); return ok })
	if s.rec.count("GET /events") != 1 {
		t.Fatalf("B opened /events %d times", s.rec.count("GET /events"))
	}

	if err := a.docs.Put(ctx, "n1", map[string]any{"text": "from A"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.eng.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, ctx, sub, func(ev core.Event) bool {
		p, ok := ev.(core.PagePulled)
		return ok && p.Kind == "note" && p.Upserts == 1
	})
	rec, err := b.eng.Get(ctx, "note", "n1")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Data, &m); err != nil || m["text"] != "from A" {
		t.Fatalf("B has %s (%v)", rec.Data, err)
	}
	// The change came by notice: no other stream, no timer.
	if n := s.rec.count("GET /events"); n != 1 {
		t.Fatalf("B opened /events %d times", n)
	}
}

func waitEvent(t *testing.T, ctx context.Context, sub *core.Subscription, match func(core.Event) bool) core.Event {
	t.Helper()
	for {
		select {
		case ev := <-sub.C:
			if se, ok := ev.(core.SyncError); ok {
				t.Logf("sync error while waiting: %v", se.Err)
			}
			if match(ev) {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("no matching event before the test's deadline (dropped %d)", sub.Dropped())
			return nil
		}
	}
}

// A PUT or DELETE of a kind the authority does not serve is 404
// unknown_kind; in a batch the op is a permanent rejection and the others
// are answered as usual; the client treats both as a permanent rejection.
func TestUnknownKindPerOpAndInBatch(t *testing.T) {
	ctx := testCtx(t)
	svc := newAuthority(t, &server.Options{Tables: []core.Table{core.Documents("todo")}})
	srv, _ := serve(t, rest.NewHandler(svc, nil))
	for _, c := range []rawCase{
		{name: "put", method: "PUT", path: "/nope/x", body: `{"a":1}`},
		{name: "put with key", method: "PUT", path: "/nope/x", body: `{"a":1}`, headers: map[string]string{"X-Idempotency-Key": "k1"}},
		{name: "delete", method: "DELETE", path: "/nope/x"},
	} {
		status, body, _ := doRaw(t, srv.URL, c)
		var eb struct{ Error, Message string }
		if status != http.StatusNotFound || json.Unmarshal(body, &eb) != nil || eb.Error != "unknown_kind" || !strings.Contains(eb.Message, "nope") {
			t.Fatalf("%s: %d %s, want 404 unknown_kind", c.name, status, body)
		}
	}
	for _, n := range []int{1, 2} {
		ops := `{"opId":"u","kind":"nope","id":"x","type":"upsert","payload":{}}`
		if n == 2 {
			ops += `,{"opId":"t","kind":"todo","id":"x","type":"upsert","payload":{"ok":true}}`
		}
		status, body, _ := doRaw(t, srv.URL, rawCase{method: "POST", path: "/batch", body: `{"ops":[` + ops + `]}`})
		var res struct {
			Results []struct {
				OpID      string `json:"opId"`
				Status    int
				Error     string
				Permanent *bool
			}
		}
		if status != 200 || json.Unmarshal(body, &res) != nil || len(res.Results) != n {
			t.Fatalf("batch of %d: %d %s", n, status, body)
		}
		if r := res.Results[0]; r.OpID != "u" || r.Status != 422 || r.Error != "rejected" {
			t.Fatalf("batch of %d: unknown kind answered %+v (%s)", n, r, body)
		}
		if n == 2 && res.Results[1].Status != 200 {
			t.Fatalf("batch of 2: the good op answered %s", body)
		}
	}
	// The client maps both forms to a permanent rejection.
	for _, c := range []*rest.Client{rest.NewClient(srv.URL, nil), seedStyleClient(t, srv.URL)} {
		res, err := c.Push(ctx, []core.Op{upsert("o1", "nope", "y", `{}`)})
		if err != nil || len(res) != 1 || res[0].Status != core.StatusRejected || !res[0].Permanent {
			t.Fatalf("client push: %+v, %v; want a permanent rejection", res, err)
		}
	}
	// Nothing was written.
	if recs := pullAll(t, rest.NewClient(srv.URL, nil), "todo", core.Cursor{}, 10); len(recs) != 1 {
		t.Fatalf("todo feed: %+v", recs)
	}
}

// seedStyleClient is a client of a backend whose /health lists no batch, so
// it pushes op by op.
func seedStyleClient(t *testing.T, url string) *rest.Client {
	t.Helper()
	upstream := http.DefaultTransport
	return rest.NewClient(url, &rest.Options{HTTPClient: &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.URL.Path == "/health" {
			rec := newRecorderResponse(req, `{"status":"ok","protocol":1,"capabilities":[]}`)
			return rec, nil
		}
		return upstream.RoundTrip(req)
	})}})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newRecorderResponse(req *http.Request, body string) *http.Response {
	return &http.Response{
		StatusCode:    200,
		Status:        "200 OK",
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}
