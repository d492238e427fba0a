package transporttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// Harness makes what the suite needs from a transport driver.
type Harness interface {
	// NewStore returns a new, empty store, closed by the harness when the
	// test ends (t.Cleanup). The suite uses it for the authority and for
	// every replica, and registers its tables itself.
	NewStore(t *testing.T) core.Store
	// NewClient returns a client connected to authority (a *server.Service
	// built by the suite), typically by serving authority with the driver's
	// server half on 127.0.0.1:0 and dialing it. Everything it starts ends
	// with the test (t.Cleanup). See ClientOptions.
	NewClient(t *testing.T, authority core.Transport, opts ClientOptions) core.Transport
	// Features says which optional powers the clients have.
	Features() Features
}

// ClientOptions qualify a client the suite asks for.
type ClientOptions struct {
	// Token is the bearer token the client presents; the server half
	// authenticates it with the authority's core.Authenticator. An
	// in-process client puts the principal in each call's context (see
	// InProcess).
	Token string
	// WrapHTTP, when set, must wrap the http.RoundTripper the client sends
	// every request through (the suite injects HTTP faults there). It is set
	// only for a harness that claims Features.HTTP, and by TestFeatures.
	WrapHTTP func(http.RoundTripper) http.RoundTripper
	// WrapConn, when set, must wrap every network connection the client
	// dials (the suite cuts and stalls connections there, below the wire
	// protocol). It is set only for a harness that claims Features.Conn, and
	// by TestFeatures.
	WrapConn func(net.Conn) net.Conn
}

// Features are the optional powers of a transport's clients. A claimed
// feature whose interface the client lacks fails TestFeatures, and so does an
// interface the client implements without claiming it.
type Features struct {
	Realtime bool // the client is a core.Subscriber that delivers the authority's notices
	Batch    bool // the client is a core.Batcher
	Getter   bool // the client is a core.Getter
	HTTP     bool // the client speaks HTTP and honours ClientOptions.WrapHTTP
	Conn     bool // the client dials network connections through ClientOptions.WrapConn
}

// Run runs every test of the suite, each as a subtest.
func Run(t *testing.T, h Harness) {
	for _, tc := range Tests() {
		t.Run(tc.Name, func(t *testing.T) { tc.Fn(t, h) })
	}
}

// Test is one test of the suite.
type Test struct {
	Name string
	Fn   func(*testing.T, Harness)
}

// Tests lists the suite's tests in the order Run runs them.
func Tests() []Test {
	return []Test{
		{"Features", TestFeatures},
		{"PushPull", TestPushPull},
		{"OfflineEdits", TestOfflineEdits},
		{"Conflict", TestConflict},
		{"ForcedRetryAfterConflict", TestForcedRetryAfterConflict},
		{"Tombstones", TestTombstones},
		{"ResetRequired", TestResetRequired},
		{"Paging", TestPaging},
		{"Microseconds", TestMicroseconds},
		{"DuplicateDelivery", TestDuplicateDelivery},
		{"LostAnswer", TestLostAnswer},
		{"ConnCutAfterPush", TestConnCutAfterPush},
		{"ScopeInvisibility", TestScopeInvisibility},
		{"BadRequests", TestBadRequests},
		{"Batch", TestBatch},
		{"Pipelined", TestPipelined},
		{"StreamedPages", TestStreamedPages},
		{"Get", TestGet},
		{"Realtime", TestRealtime},
		{"LimitsIDs", TestLimitsIDs},
		{"LimitsPayload", TestLimitsPayload},
		{"LimitsPageBytes", TestLimitsPageBytes},
		{"LimitsDynamicKindsOnRead", TestLimitsDynamicKindsOnRead},
		{"LimitsScopedNotices", TestLimitsScopedNotices},
		{"Convergence", TestConvergence},
	}
}

// NoteKind is the kind of the suite's document table.
const NoteKind = "tt_note"

// logKind is the authority's log of applied writes (see logApplied).
const logKind = "tt_applied"

// Notes is the suite's document table.
var (
	Notes   = core.Documents(NoteKind)
	applied = core.Documents(logKind)
)

// t0 has microseconds that a truncation would lose.
var t0 = time.Date(2026, 11, 24, 19, 41, 55, 123456000, time.UTC)

// mode is how a world's clients reach the authority.
type mode string

const (
	modeClean mode = "clean"     // the bare client
	modeFault mode = "faults"    // through faults.Wrap
	modeHTTP  mode = "httpfault" // through faults.WrapHTTP
	modeConn  mode = "connfault" // through faults.Conns
)

func modes(h Harness) []mode {
	m := []mode{modeClean, modeFault}
	if h.Features().HTTP {
		m = append(m, modeHTTP)
	}
	if h.Features().Conn {
		m = append(m, modeConn)
	}
	return m
}

// world is one authority (the reference server over a harness store), with
// replicas connected through the harness's clients.
type world struct {
	t     *testing.T
	h     Harness
	mode  mode
	store core.Store
	svc   *server.Service
	clock *core.ManualClock // the replicas' clock
	inj   *faults.Injector
}

// worlds runs fn once per mode, each in a subtest with a fresh world.
func worlds(t *testing.T, h Harness, opts func(*server.Options), fn func(t *testing.T, w *world)) {
	for _, m := range modes(h) {
		t.Run(string(m), func(t *testing.T) {
			w := newWorld(t, h, m, opts)
			fn(t, w)
			if w.inj != nil {
				t.Logf("faults: %s", w.inj.Stats())
			}
		})
	}
}

func seedOf(s string) uint64 {
	f := fnv.New64a()
	f.Write([]byte(s))
	return f.Sum64()
}

// faultRules are the random faults of a scenario: each one a few times at
// most, so that a scenario's retries always end.
func faultRules(m mode) []faults.Rule {
	switch m {
	case modeFault:
		return []faults.Rule{
			{Fault: faults.DropRequest, Method: faults.Push, Chance: 0.25, Times: 2},
			{Fault: faults.DropAnswer, Method: faults.Push, Chance: 0.3, Times: 2},
			{Fault: faults.Duplicate, Method: faults.Push, Chance: 0.3, Times: 3},
			{Fault: faults.DropRequest, Method: faults.Pull, Chance: 0.15, Times: 2},
			{Fault: faults.CutPage, Method: faults.Pull, Chance: 0.15, Times: 2},
			{Fault: faults.ShortPage, Method: faults.Pull, Chance: 0.15, Times: 2, Keep: -1},
			{Fault: faults.Duplicate, Method: faults.Get, Chance: 0.3, Times: 2},
		}
	case modeHTTP:
		return []faults.Rule{
			{Fault: faults.DropRequest, Method: faults.HTTP, Chance: 0.15, Times: 2},
			{Fault: faults.DropAnswer, Method: faults.HTTP, Chance: 0.2, Times: 3},
			{Fault: faults.Duplicate, Method: faults.HTTP, Chance: 0.2, Times: 3},
			{Fault: faults.CutBody, Method: faults.HTTP, Chance: 0.1, Times: 2, Keep: -1},
		}
	case modeConn:
		return []faults.Rule{
			{Fault: faults.DropRequest, Method: faults.Conn, Chance: 0.1, Times: 2},
			{Fault: faults.DropAnswer, Method: faults.Conn, Chance: 0.15, Times: 3},
			{Fault: faults.CutBody, Method: faults.Conn, Chance: 0.05, Times: 2, Keep: -1},
		}
	}
	return nil
}

func newWorld(t *testing.T, h Harness, m mode, opts func(*server.Options)) *world {
	t.Helper()
	w := &world{t: t, h: h, mode: m, clock: core.NewManualClock(t0)}
	w.store = h.NewStore(t)
	o := server.Options{
		Tables:   []core.Table{Notes, applied},
		Clock:    core.NewManualClock(t0),
		Validate: logApplied(w.store),
	}
	if opts != nil {
		opts(&o)
	}
	svc, err := server.New(t.Context(), w.store, &o)
	if err != nil {
		t.Fatalf("server.New over the harness store: %v", err)
	}
	t.Cleanup(func() { svc.Close() })
	w.svc = svc
	if m != modeClean {
		inj, err := faults.New(faults.Options{Seed: seedOf(t.Name()), Rules: faultRules(m)})
		if err != nil {
			t.Fatal(err)
		}
		w.inj = inj
	}
	return w
}

// logKey names an applied write in the log: an upsert by the unique "w"
// field every write of the suite carries (so that a transport that drops the
// op's idempotency key is still caught), else by its op ID.
func logKey(op core.Op) string {
	if op.Type == core.OpUpsert {
		var m map[string]any
		if json.Unmarshal(op.Payload, &m) == nil {
			if w, ok := m["w"].(string); ok && w != "" {
				return op.Kind + ":w:" + w
			}
		}
	}
	return op.Kind + ":op:" + op.OpID
}

// logApplied is the authority's Validate hook: it counts every write it
// lets through in the write's own transaction (a nested Update joins it), so
// a write applied twice shows as a count of two, and a write rolled back
// leaves no count.
func logApplied(st core.Store) func(ctx context.Context, p core.Principal, op core.Op, cur *core.Record) error {
	return func(ctx context.Context, _ core.Principal, op core.Op, _ *core.Record) error {
		if op.Kind == logKind {
			return fmt.Errorf("%w: the log is the authority's", core.ErrRejected)
		}
		return st.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			key := logKey(op)
			n := 0
			if prev, err := tx.Get(ctx, logKind, key); err == nil {
				var m struct{ N int }
				if err := json.Unmarshal(prev.Data, &m); err != nil {
					return err
				}
				n = m.N
			} else if !errors.Is(err, core.ErrNotFound) {
				return err
			}
			b, _ := json.Marshal(map[string]any{"n": n + 1, "record": op.Kind + "/" + op.ID})
			return tx.Put(ctx, core.Record{Kind: logKind, ID: key, UpdatedAt: t0, Data: b})
		})
	}
}

// fataler is what the suite's helpers need of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// appliedCounts reads the log: how many times each write of kind was applied.
func appliedCounts(t fataler, st core.Store, kind string) map[string]int {
	t.Helper()
	out := map[string]int{}
	prefix := kind + ":"
	err := st.View(context.Background(), func(ctx context.Context, tx core.Tx) error {
		after := prefix
		for {
			recs, err := tx.List(ctx, logKind, core.ListOptions{AfterID: after, Limit: 200})
			if err != nil {
				return err
			}
			for _, r := range recs {
				if !strings.HasPrefix(r.ID, prefix) {
					return nil
				}
				var m struct{ N int }
				if err := json.Unmarshal(r.Data, &m); err != nil {
					return err
				}
				out[strings.TrimPrefix(r.ID, prefix)] = m.N
			}
			if len(recs) < 200 {
				return nil
			}
			after = recs[len(recs)-1].ID
		}
	})
	if err != nil {
		t.Fatalf("reading the authority's log: %v", err)
	}
	return out
}

// checkAppliedOnce fails for every write the authority applied more than once.
func (w *world) checkAppliedOnce(t testing.TB) {
	t.Helper()
	for k, n := range appliedCounts(t, w.store, NoteKind) {
		if n != 1 {
			t.Errorf("write %s was applied %d times at the authority, want once: a re-sent or duplicated op must be answered from the idempotency record (does the transport carry the op's OpID as its idempotency key?)", k, n)
		}
	}
}

// client returns a harness client to the world's authority, through the
// world's faults.
func (w *world) client(token string) core.Transport {
	w.t.Helper()
	o := ClientOptions{Token: token}
	if w.mode == modeHTTP {
		inj := w.inj
		o.WrapHTTP = func(rt http.RoundTripper) http.RoundTripper { return faults.WrapHTTP(rt, inj) }
	}
	if w.mode == modeConn {
		o.WrapConn = faults.NewConns(w.inj).Wrap
	}
	c := w.h.NewClient(w.t, w.svc, o)
	if c == nil {
		w.t.Fatal("harness NewClient returned nil")
	}
	if w.mode == modeFault {
		c = faults.Wrap(c, w.inj)
	}
	return c
}

// replica is one engine over a harness store.
type replica struct {
	name  string
	eng   *core.Engine
	store core.Store
	notes *core.DocWriter
}

type replicaOptions struct {
	token     string
	conflicts core.Resolver
	pageSize  int
	batchSize int
	wrap      func(core.Transport) core.Transport
	wrapConn  func(net.Conn) net.Conn // a client of its own through ClientOptions.WrapConn (Features.Conn)
}

func (w *world) replica(name string, o replicaOptions) *replica {
	w.t.Helper()
	st := w.h.NewStore(w.t)
	var tr core.Transport
	if o.wrapConn != nil {
		tr = w.h.NewClient(w.t, w.svc, ClientOptions{Token: o.token, WrapConn: o.wrapConn})
	} else {
		tr = w.client(o.token)
	}
	if o.wrap != nil {
		tr = o.wrap(tr)
	}
	opts := &core.Options{Tables: []core.Table{Notes}, Clock: w.clock, PageSize: o.pageSize, BatchSize: o.batchSize}
	if o.conflicts != nil {
		opts.Conflicts = core.Conflicts{Default: o.conflicts}
	}
	eng, err := core.NewEngine(w.t.Context(), st, tr, opts)
	if err != nil {
		w.t.Fatalf("NewEngine over the harness store and client: %v", err)
	}
	w.t.Cleanup(func() { eng.Close() })
	return &replica{name: name, eng: eng, store: st, notes: core.DocsFor(eng, Notes)}
}

func (r *replica) put(t testing.TB, id string, data map[string]any, opts ...core.UpdateOption) {
	t.Helper()
	if err := r.notes.Put(t.Context(), id, data, opts...); err != nil {
		t.Fatalf("%s: put %s: %v", r.name, id, err)
	}
}

func (r *replica) del(t testing.TB, id string) {
	t.Helper()
	if err := r.notes.Delete(t.Context(), id); err != nil {
		t.Fatalf("%s: delete %s: %v", r.name, id, err)
	}
}

func (r *replica) pending(t testing.TB) int {
	t.Helper()
	counts, err := r.eng.Pending(t.Context())
	if err != nil {
		t.Fatalf("%s: pending: %v", r.name, err)
	}
	n := 0
	for _, c := range counts {
		n += c.Count
	}
	return n
}

// sync syncs r until a sync ends without error with an empty outbox,
// retrying through injected faults (each fault fires a bounded number of
// times), and returns the summed stats.
func (w *world) sync(t testing.TB, r *replica) core.Stats {
	t.Helper()
	var sum core.Stats
	var last error
	for range 40 {
		w.clock.Advance(10 * time.Minute) // past any backoff
		st, err := r.eng.Sync(t.Context())
		sum.Pushed += st.Pushed
		sum.Pulled += st.Pulled
		sum.Conflicts += st.Conflicts
		sum.Resolved += st.Resolved
		sum.Errors += st.Errors
		last = err
		if err == nil && r.pending(t) == 0 {
			return sum
		}
		if err != nil && !core.Retryable(err) && w.mode == modeClean {
			t.Fatalf("%s: sync: %v", r.name, err)
		}
	}
	w.checkAppliedOnce(t)
	t.Fatalf("%s: no clean sync after 40 tries (last error %v, %d ops pending, %d conflicts on the way): every push keeps failing or conflicting", r.name, last, r.pending(t), sum.Conflicts)
	return sum
}

// settle syncs the replicas in turn until each ended a round cleanly.
func (w *world) settle(t testing.TB, rs ...*replica) {
	t.Helper()
	for range 2 {
		for _, r := range rs {
			w.sync(t, r)
		}
	}
}

// authorityRecord reads kind/id from the authority's store.
func (w *world) authorityRecord(t testing.TB, id string) (core.Record, bool) {
	t.Helper()
	var rec core.Record
	var gerr error
	err := w.store.View(context.Background(), func(ctx context.Context, tx core.Tx) error {
		rec, gerr = tx.Get(ctx, NoteKind, id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if errors.Is(gerr, core.ErrNotFound) {
		return core.Record{}, false
	}
	if gerr != nil {
		t.Fatalf("authority get %s: %v", id, gerr)
	}
	return rec, true
}

func (r *replica) record(t testing.TB, id string) (core.Record, bool) {
	t.Helper()
	rec, err := r.eng.Get(t.Context(), NoteKind, id)
	if errors.Is(err, core.ErrNotFound) {
		return core.Record{}, false
	}
	if err != nil {
		t.Fatalf("%s: get %s: %v", r.name, id, err)
	}
	return rec, true
}

func fieldsOf(t testing.TB, rec core.Record) map[string]any {
	t.Helper()
	if len(rec.Data) == 0 {
		return map[string]any{}
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Data, &m); err != nil {
		t.Fatalf("%s/%s data %q: %v", rec.Kind, rec.ID, rec.Data, err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return m
}

// sameRecords compares two sets of rows: ids, versions to the microsecond,
// tombstones, and the data of live rows as JSON values.
func sameRecords(a, b []core.Record) string {
	idx := map[string]core.Record{}
	for _, r := range b {
		idx[r.ID] = r
	}
	var diffs []string
	for _, x := range a {
		y, ok := idx[x.ID]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s only on the first side", x.ID))
			continue
		}
		delete(idx, x.ID)
		switch {
		case !x.UpdatedAt.Equal(y.UpdatedAt):
			diffs = append(diffs, fmt.Sprintf("%s: updated_at %s vs %s", x.ID, core.FormatTime(x.UpdatedAt), core.FormatTime(y.UpdatedAt)))
		case x.Deleted() != y.Deleted():
			diffs = append(diffs, fmt.Sprintf("%s: deleted %v vs %v", x.ID, x.Deleted(), y.Deleted()))
		case !x.Deleted() && !sameJSON(x.Data, y.Data):
			diffs = append(diffs, fmt.Sprintf("%s: data %s vs %s", x.ID, x.Data, y.Data))
		}
	}
	for id := range idx {
		diffs = append(diffs, fmt.Sprintf("%s only on the second side", id))
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}

func sameJSON(a, b json.RawMessage) bool {
	var x, y any
	if len(a) == 0 {
		a = json.RawMessage("{}")
	}
	if len(b) == 0 {
		b = json.RawMessage("{}")
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func listStore(t fataler, st core.Store, kind string) []core.Record {
	t.Helper()
	var recs []core.Record
	err := st.View(context.Background(), func(ctx context.Context, tx core.Tx) error {
		var err error
		recs, err = tx.List(ctx, kind, core.ListOptions{IncludeDeleted: true})
		return err
	})
	if err != nil {
		t.Fatalf("list %s: %v", kind, err)
	}
	return recs
}

// converged fails unless every replica holds exactly the authority's rows.
func (w *world) converged(t testing.TB, rs ...*replica) {
	t.Helper()
	want := listStore(t, w.store, NoteKind)
	for _, r := range rs {
		got, err := r.eng.List(t.Context(), NoteKind, core.ListOptions{IncludeDeleted: true})
		if err != nil {
			t.Fatal(err)
		}
		if d := sameRecords(got, want); d != "" {
			t.Errorf("replica %s differs from the authority (replica vs authority): %s", r.name, d)
		}
	}
}

// writeID makes the unique "w" value of a write.
func writeID(prefix string, n int) string { return prefix + "-" + strconv.Itoa(n) }

// InProcess returns a client for an authority in the same process: every
// call goes to authority with the principal of token in its context (when
// authority is a core.Authenticator), as a transport's server half would do.
// It implements core.Getter, core.Subscriber and core.Batcher, answering
// errors.ErrUnsupported when authority lacks the power, and
// core.PageStreamer when authority does.
func InProcess(authority core.Transport, token string) core.Transport {
	if _, ok := authority.(core.PageStreamer); ok {
		return inProcessStreamer{inProcess{authority, token}}
	}
	return inProcess{authority, token}
}

type inProcess struct {
	inner core.Transport
	token string
}

var (
	_ core.Getter     = inProcess{}
	_ core.Subscriber = inProcess{}
	_ core.Batcher    = inProcess{}
)

func (c inProcess) auth(ctx context.Context) (context.Context, error) {
	a, ok := c.inner.(core.Authenticator)
	if !ok {
		return ctx, nil
	}
	p, err := a.Authenticate(ctx, c.token)
	if err != nil {
		return nil, err
	}
	return core.WithPrincipal(ctx, p), nil
}

func (c inProcess) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	ctx, err := c.auth(ctx)
	if err != nil {
		return core.Page{}, err
	}
	return c.inner.Pull(ctx, req)
}

func (c inProcess) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	ctx, err := c.auth(ctx)
	if err != nil {
		return nil, err
	}
	return c.inner.Push(ctx, ops)
}

func (c inProcess) Get(ctx context.Context, kind, id string) (core.Record, error) {
	g, ok := c.inner.(core.Getter)
	if !ok {
		return core.Record{}, fmt.Errorf("transporttest: get: %w", errors.ErrUnsupported)
	}
	ctx, err := c.auth(ctx)
	if err != nil {
		return core.Record{}, err
	}
	return g.Get(ctx, kind, id)
}

func (c inProcess) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	s, ok := c.inner.(core.Subscriber)
	if !ok {
		return nil, fmt.Errorf("transporttest: subscribe: %w", errors.ErrUnsupported)
	}
	ctx, err := c.auth(ctx)
	if err != nil {
		return nil, err
	}
	return s.Subscribe(ctx, kinds)
}

func (c inProcess) BatchLimits(ctx context.Context) (core.BatchLimits, error) {
	b, ok := c.inner.(core.Batcher)
	if !ok {
		return core.BatchLimits{}, fmt.Errorf("transporttest: batch limits: %w", errors.ErrUnsupported)
	}
	ctx, err := c.auth(ctx)
	if err != nil {
		return core.BatchLimits{}, err
	}
	return b.BatchLimits(ctx)
}
