package transporttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// TestFeatures: the client has exactly the optional interfaces the harness
// claims, and sends HTTP through ClientOptions.WrapHTTP exactly when it
// claims Features.HTTP.
func TestFeatures(t *testing.T, h Harness) {
	w := newWorld(t, h, modeClean, nil)
	var requests, conns atomic.Int64
	c := h.NewClient(t, w.svc, ClientOptions{WrapHTTP: func(rt http.RoundTripper) http.RoundTripper {
		return countingRT{rt, &requests}
	}, WrapConn: func(c net.Conn) net.Conn { conns.Add(1); return c }})
	if c == nil {
		t.Fatal("harness NewClient returned nil")
	}
	f := h.Features()
	for _, p := range []struct {
		name    string
		claimed bool
		has     bool
		iface   string
	}{
		{"Realtime", f.Realtime, is[core.Subscriber](c), "core.Subscriber"},
		{"Batch", f.Batch, is[core.Batcher](c), "core.Batcher"},
		{"Getter", f.Getter, is[core.Getter](c), "core.Getter"},
	} {
		switch {
		case p.claimed && !p.has:
			t.Errorf("Features.%s is claimed but the client (%T) does not implement %s", p.name, c, p.iface)
		case !p.claimed && p.has:
			t.Errorf("the client (%T) implements %s but Features.%s is not claimed", c, p.iface, p.name)
		}
	}
	if _, err := c.Pull(t.Context(), core.PullRequest{Kind: NoteKind}); err != nil {
		t.Fatalf("pull: %v", err)
	}
	switch n := requests.Load(); {
	case f.HTTP && n == 0:
		t.Errorf("Features.HTTP is claimed but no request went through ClientOptions.WrapHTTP")
	case !f.HTTP && n > 0:
		t.Errorf("the client sent %d requests through ClientOptions.WrapHTTP but Features.HTTP is not claimed", n)
	}
	switch n := conns.Load(); {
	case f.Conn && n == 0:
		t.Errorf("Features.Conn is claimed but no connection went through ClientOptions.WrapConn")
	case !f.Conn && n > 0:
		t.Errorf("the client dialed %d connections through ClientOptions.WrapConn but Features.Conn is not claimed", n)
	}
}

func is[I any](v any) bool { _, ok := v.(I); return ok }

type countingRT struct {
	inner http.RoundTripper
	n     *atomic.Int64
}

func (c countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	if c.inner == nil {
		return http.DefaultTransport.RoundTrip(r)
	}
	return c.inner.RoundTrip(r)
}

// TestPushPull: what one replica writes reaches another with the same data
// and the authority's exact version.
func TestPushPull(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		a, b := w.replica("a", replicaOptions{}), w.replica("b", replicaOptions{})
		for i := range 3 {
			a.put(t, fmt.Sprintf("n%d", i), map[string]any{"w": writeID("a", i), "title": fmt.Sprintf("note %d", i), "tags": []any{"x", "y"}})
		}
		if st := w.sync(t, a); st.Conflicts != 0 {
			t.Errorf("creating new records made %d conflicts", st.Conflicts)
		}
		w.sync(t, b)
		for i := range 3 {
			id := fmt.Sprintf("n%d", i)
			got, ok := b.record(t, id)
			if !ok {
				t.Fatalf("replica b lacks %s after a sync", id)
			}
			auth, _ := w.authorityRecord(t, id)
			if !got.UpdatedAt.Equal(auth.UpdatedAt) {
				t.Errorf("%s: replica version %s, authority %s", id, core.FormatTime(got.UpdatedAt), core.FormatTime(auth.UpdatedAt))
			}
			if f := fieldsOf(t, got); f["title"] != fmt.Sprintf("note %d", i) {
				t.Errorf("%s: replica b has %v", id, f)
			}
		}
		w.converged(t, a, b)
		w.checkAppliedOnce(t)
	})
}

// TestOfflineEdits: two replicas edit offline — different records, and
// different fields of one record — and both end with every edit.
func TestOfflineEdits(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		a, b := w.replica("a", replicaOptions{}), w.replica("b", replicaOptions{})
		a.put(t, "shared", map[string]any{"w": "a-0", "title": "start", "body": "start"})
		w.sync(t, a)
		w.sync(t, b)
		// Offline: nothing syncs while both edit.
		a.put(t, "shared", map[string]any{"w": "a-1", "title": "from a", "body": "start"}, core.Changed("title", "w"))
		b.put(t, "shared", map[string]any{"w": "b-1", "title": "start", "body": "from b"}, core.Changed("body", "w"))
		for i := range 3 {
			a.put(t, fmt.Sprintf("a%d", i), map[string]any{"w": writeID("a-own", i)})
			b.put(t, fmt.Sprintf("b%d", i), map[string]any{"w": writeID("b-own", i)})
		}
		w.settle(t, a, b)
		rec, ok := w.authorityRecord(t, "shared")
		if !ok {
			t.Fatal("shared record missing at the authority")
		}
		if f := fieldsOf(t, rec); f["title"] != "from a" || f["body"] != "from b" {
			t.Errorf("shared record %v, want both offline edits (title from a, body from b)", f)
		}
		w.converged(t, a, b)
		if n := len(listStore(t, w.store, NoteKind)); n != 7 {
			t.Errorf("authority has %d notes, want 7", n)
		}
		w.checkAppliedOnce(t)
	})
}

// TestConflict: a push on a stale base is a conflict answered with the
// current record; with serverWins the replica takes the authority's version.
func TestConflict(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		a := w.replica("a", replicaOptions{})
		b := w.replica("b", replicaOptions{conflicts: core.ServerWins})
		a.put(t, "x", map[string]any{"w": "a-0", "v": 0})
		w.sync(t, a)
		w.sync(t, b)
		a.put(t, "x", map[string]any{"w": "a-1", "v": 1})
		w.sync(t, a)
		b.put(t, "x", map[string]any{"w": "b-1", "v": 2})
		if st := w.sync(t, b); st.Conflicts == 0 {
			t.Errorf("a push on a stale base was not answered as a conflict")
		}
		got, _ := b.record(t, "x")
		if f := fieldsOf(t, got); fmt.Sprint(f["v"]) != "1" {
			t.Errorf("after serverWins replica b has %v, want the authority's v=1", f)
		}
		w.converged(t, a, b)
		w.checkAppliedOnce(t)
	})
}

// TestForcedRetryAfterConflict: with clientWins, the conflicted op is
// re-sent forced under the same OpID and must be applied: an authority or
// transport that keeps the 409 under the idempotency key fails here.
func TestForcedRetryAfterConflict(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		a := w.replica("a", replicaOptions{})
		b := w.replica("b", replicaOptions{conflicts: core.ClientWins})
		a.put(t, "x", map[string]any{"w": "a-0", "v": 0})
		w.sync(t, a)
		w.sync(t, b)
		a.put(t, "x", map[string]any{"w": "a-1", "v": 1})
		w.sync(t, a)
		b.put(t, "x", map[string]any{"w": "b-1", "v": 2})
		var st core.Stats
		for range 10 {
			w.clock.Advance(10 * time.Minute)
			s, _ := b.eng.Sync(t.Context())
			st.Conflicts += s.Conflicts
			if b.pending(t) == 0 {
				break
			}
		}
		rec, _ := w.authorityRecord(t, "x")
		if f := fieldsOf(t, rec); fmt.Sprint(f["v"]) != "2" {
			t.Fatalf("the forced retry of a conflicted op was not applied (authority has %v, %d conflicts, %d ops still pending): a 409 must not be kept under the idempotency key", f, st.Conflicts, b.pending(t))
		}
		if st.Conflicts == 0 {
			t.Errorf("a push on a stale base was not answered as a conflict")
		}
		w.settle(t, a, b)
		w.converged(t, a, b)
		w.checkAppliedOnce(t)
	})
}

// TestTombstones: a delete reaches the other replica as a tombstone and
// stays in the feed.
func TestTombstones(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		a, b := w.replica("a", replicaOptions{}), w.replica("b", replicaOptions{})
		a.put(t, "gone", map[string]any{"w": "a-0"})
		a.put(t, "kept", map[string]any{"w": "a-1"})
		w.sync(t, a)
		w.sync(t, b)
		a.del(t, "gone")
		w.sync(t, a)
		w.sync(t, b)
		rec, ok := b.record(t, "gone")
		if ok && !rec.Deleted() {
			t.Fatalf("replica b still has a live %q after the delete synced", "gone")
		}
		auth, ok := w.authorityRecord(t, "gone")
		if !ok || !auth.Deleted() {
			t.Fatalf("the authority has no tombstone for a deleted record")
		}
		// The tombstone is in the feed from the start.
		c := w.client("")
		seen := false
		walk(t, c, core.PullRequest{Kind: NoteKind, Limit: 1}, func(r core.Record) {
			if r.ID == "gone" {
				seen = true
				if !r.Deleted() || !r.UpdatedAt.Equal(auth.UpdatedAt) {
					t.Errorf("the feed has gone deleted=%v @%s, want a tombstone @%s", r.Deleted(), core.FormatTime(r.UpdatedAt), core.FormatTime(auth.UpdatedAt))
				}
			}
		})
		if !seen {
			t.Errorf("a pull from the start does not include the tombstone")
		}
		w.converged(t, a, b)
		w.checkAppliedOnce(t)
	})
}

// walk pulls a whole feed page by page, retrying a page on a retryable
// error, and calls fn for every record.
func walk(t testing.TB, c core.Transport, req core.PullRequest, fn func(core.Record)) int {
	t.Helper()
	pages := 0
	for tries := 0; ; {
		p, err := c.Pull(t.Context(), req)
		if err != nil {
			if core.Retryable(err) && tries < 20 {
				tries++
				continue
			}
			t.Fatalf("pull %+v: %v", req, err)
		}
		pages++
		for _, r := range p.Records {
			fn(r)
		}
		if p.NextPageToken == "" {
			return pages
		}
		if len(p.Records) > 0 {
			last := p.Records[len(p.Records)-1]
			req.After = core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
		}
		req.PageToken = p.NextPageToken
	}
}

// TestPaging: a replica pulls many pages; rows written during its walk
// (a new row, and an update of a row already served) are not skipped.
func TestPaging(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		a := w.replica("a", replicaOptions{})
		for i := range 23 {
			a.put(t, fmt.Sprintf("p%02d", i), map[string]any{"w": writeID("a", i), "i": i})
		}
		w.sync(t, a)
		writer := w.replica("writer", replicaOptions{})
		w.sync(t, writer)
		var pulls atomic.Int64
		b := w.replica("b", replicaOptions{pageSize: 4, wrap: func(c core.Transport) core.Transport {
			return duringWalk{c, func() {
				if pulls.Add(1) != 2 {
					return
				}
				// Between pages: update a row already served and add one.
				writer.put(t, "p00", map[string]any{"w": "writer-0", "i": 100})
				writer.put(t, "p99", map[string]any{"w": "writer-1", "i": 99})
				w.sync(t, writer)
			}}
		}})
		w.sync(t, b)
		w.sync(t, b)
		got, _ := b.record(t, "p00")
		if f := fieldsOf(t, got); fmt.Sprint(f["i"]) != "100" {
			t.Errorf("a row updated during the walk has %v on the replica, want i=100", f)
		}
		if _, ok := b.record(t, "p99"); !ok {
			t.Errorf("a row created during the walk is missing on the replica")
		}
		// A raw walk with a small limit sees every row once.
		seen := map[string]int{}
		pages := walk(t, w.client(""), core.PullRequest{Kind: NoteKind, Limit: 5}, func(r core.Record) { seen[r.ID]++ })
		if len(seen) != 24 || pages < 5 {
			t.Errorf("a walk with limit 5 saw %d distinct rows in %d pages, want 24 rows in at least 5 pages", len(seen), pages)
		}
		w.settle(t, a, b, writer)
		w.converged(t, a, b, writer)
		w.checkAppliedOnce(t)
	})
}

// duringWalk calls hook before each pull.
type duringWalk struct {
	core.Transport
	hook func()
}

func (d duringWalk) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	d.hook()
	return d.Transport.Pull(ctx, req)
}

// TestMicroseconds: versions keep their microseconds end to end, and an edit
// based on one is not a spurious conflict.
func TestMicroseconds(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		a, b := w.replica("a", replicaOptions{}), w.replica("b", replicaOptions{})
		a.put(t, "m", map[string]any{"w": "a-0"})
		w.sync(t, a)
		auth, _ := w.authorityRecord(t, "m")
		if auth.UpdatedAt.Nanosecond()%int(time.Millisecond) == 0 {
			t.Fatalf("the authority's version %s has no microseconds; the suite's clock has them", core.FormatTime(auth.UpdatedAt))
		}
		w.sync(t, b)
		got, _ := b.record(t, "m")
		if !got.UpdatedAt.Equal(auth.UpdatedAt) {
			t.Fatalf("version %s arrived as %s", core.FormatTime(auth.UpdatedAt), core.FormatTime(got.UpdatedAt))
		}
		b.put(t, "m", map[string]any{"w": "b-1"})
		if st := w.sync(t, b); st.Conflicts != 0 {
			t.Errorf("an edit on the current version made %d conflicts: the base lost precision on the way", st.Conflicts)
		}
		w.sync(t, a)
		w.converged(t, a, b)
		w.checkAppliedOnce(t)
	})
}

// TestDuplicateDelivery: a push delivered twice is applied once, and the
// second delivery is answered as applied (not as a conflict).
func TestDuplicateDelivery(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		inj, err := faults.New(faults.Options{Rules: []faults.Rule{{Fault: faults.Duplicate, Method: faults.Push}}})
		if err != nil {
			t.Fatal(err)
		}
		a := w.replica("a", replicaOptions{wrap: func(c core.Transport) core.Transport { return faults.Wrap(c, inj) }})
		a.put(t, "d", map[string]any{"w": "a-0"})
		st := w.sync(t, a)
		a.put(t, "d", map[string]any{"w": "a-1"})
		a.put(t, "e", map[string]any{"w": "a-2"})
		st2 := w.sync(t, a)
		if c := st.Conflicts + st2.Conflicts; c != 0 {
			t.Errorf("duplicated pushes were answered with %d conflicts: the second delivery must get the idempotent answer", c)
		}
		if inj.Stats().Injected[faults.Duplicate] == 0 {
			t.Fatal("no push was duplicated")
		}
		w.checkAppliedOnce(t)
		w.converged(t, a)
	})
}

// TestLostAnswer: the authority commits a push whose answer is lost; the
// replica re-sends it and gets the idempotent answer, with no second apply
// and no conflict.
func TestLostAnswer(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		inj, err := faults.New(faults.Options{Rules: []faults.Rule{{Fault: faults.DropAnswer, Method: faults.Push, Times: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		a := w.replica("a", replicaOptions{wrap: func(c core.Transport) core.Transport { return faults.Wrap(c, inj) }})
		b := w.replica("b", replicaOptions{})
		a.put(t, "l", map[string]any{"w": "a-0", "v": 0})
		st := w.sync(t, a)
		a.put(t, "l", map[string]any{"w": "a-1", "v": 1})
		st2 := w.sync(t, a)
		if inj.Stats().Injected[faults.DropAnswer] != 2 {
			t.Fatalf("answers dropped: %d, want 2", inj.Stats().Injected[faults.DropAnswer])
		}
		if c := st.Conflicts + st2.Conflicts; c != 0 {
			t.Errorf("re-sending a push whose answer was lost made %d conflicts: the retry must get the idempotent answer", c)
		}
		w.checkAppliedOnce(t)
		w.sync(t, b)
		w.converged(t, a, b)
	})
}

// scoped is the scope world: tokens alice and bob, each seeing only the
// notes whose owner is them.
func scoped(o *server.Options) {
	o.Authenticate = func(ctx context.Context, token string) (core.Principal, error) {
		if token == "alice" || token == "bob" {
			return core.Principal{ID: token}, nil
		}
		return core.Principal{}, fmt.Errorf("token %q: %w", token, core.ErrUnauthorized)
	}
	o.Scope = func(ctx context.Context, p core.Principal, kind string) (*core.Filter, error) {
		if kind != NoteKind {
			return nil, nil
		}
		return &core.Filter{Field: "owner", Values: []string{p.ID}}, nil
	}
}

// TestScopeInvisibility: a record outside the caller's scope is absent from
// its pulls, NotFound on fetch and on push, and never shown in a conflict.
func TestScopeInvisibility(t *testing.T, h Harness) {
	worlds(t, h, scoped, func(t *testing.T, w *world) {
		alice := w.replica("alice", replicaOptions{token: "alice"})
		bob := w.replica("bob", replicaOptions{token: "bob"})
		alice.put(t, "secret", map[string]any{"w": "alice-0", "owner": "alice", "text": "alice only"})
		bob.put(t, "mine", map[string]any{"w": "bob-0", "owner": "bob"})
		w.settle(t, alice, bob)
		if _, ok := bob.record(t, "secret"); ok {
			t.Fatalf("bob's replica pulled alice's record")
		}
		if _, ok := alice.record(t, "mine"); ok {
			t.Fatalf("alice's replica pulled bob's record")
		}
		c := w.client("bob")
		seen := 0
		walk(t, c, core.PullRequest{Kind: NoteKind}, func(r core.Record) {
			seen++
			if r.ID == "secret" {
				t.Errorf("bob's pull shows alice's record")
			}
		})
		if seen != 1 {
			t.Errorf("bob's pull has %d records, want his 1", seen)
		}
		auth, _ := w.authorityRecord(t, "secret")
		ops := []core.Op{{OpID: "bob-steals", Kind: NoteKind, ID: "secret", Type: core.OpUpsert,
			Payload: []byte(`{"w":"bob-x","owner":"bob"}`), BaseUpdatedAt: auth.UpdatedAt}}
		res := push(t, c, ops)
		if res[0].Status != core.StatusNotFound || res[0].Record != nil {
			t.Errorf("bob's push on alice's record answered %s with %v, want not_found and no record", res[0].Status, res[0].Record)
		}
		create := []core.Op{{OpID: "bob-create", Kind: NoteKind, ID: "secret", Type: core.OpUpsert, Payload: []byte(`{"w":"bob-y"}`)}}
		if r := push(t, c, create); r[0].Status == core.StatusConflict && r[0].Record != nil {
			t.Errorf("bob's create over alice's record was a conflict showing it: %s", r[0].Record.Data)
		}
		if g, ok := c.(core.Getter); ok {
			if _, err := getRetry(t, g, NoteKind, "secret"); !errors.Is(err, core.ErrNotFound) {
				t.Errorf("bob's fetch of alice's record: %v, want ErrNotFound", err)
			}
		}
		if rec, _ := w.authorityRecord(t, "secret"); fieldsOf(t, rec)["text"] != "alice only" {
			t.Errorf("alice's record changed: %s", rec.Data)
		}
		if _, ok := alice.record(t, "secret"); !ok {
			t.Errorf("alice's replica lost her own record")
		}
		w.checkAppliedOnce(t)
	})
}

// push sends ops, retrying a retryable failure (the same OpIDs, so a
// correct authority answers idempotently).
func push(t testing.TB, c core.Transport, ops []core.Op) []core.PushResult {
	t.Helper()
	for tries := 0; ; tries++ {
		res, err := c.Push(t.Context(), ops)
		if err == nil && !anyRetry(res) {
			if len(res) != len(ops) {
				t.Fatalf("push of %d ops answered %d results", len(ops), len(res))
			}
			for i := range res {
				if res[i].OpID != ops[i].OpID {
					t.Fatalf("result %d answers op %q, want %q (results come in the order of the ops)", i, res[i].OpID, ops[i].OpID)
				}
			}
			return res
		}
		if (err != nil && !core.Retryable(err)) || tries > 20 {
			t.Fatalf("push: %v", err)
		}
	}
}

func anyRetry(res []core.PushResult) bool {
	for _, r := range res {
		if r.Status == core.StatusRetry {
			return true
		}
	}
	return false
}

func getRetry(t testing.TB, g core.Getter, kind, id string) (core.Record, error) {
	t.Helper()
	for tries := 0; ; tries++ {
		rec, err := g.Get(t.Context(), kind, id)
		if err == nil || !core.Retryable(err) || tries > 20 {
			return rec, err
		}
	}
}

func pullRetry(t testing.TB, c core.Transport, req core.PullRequest) (core.Page, error) {
	t.Helper()
	for tries := 0; ; tries++ {
		p, err := c.Pull(t.Context(), req)
		if err == nil || !core.Retryable(err) || tries > 20 {
			return p, err
		}
	}
}

// TestBadRequests: a forged page token is ErrBadCursor, an unknown kind is
// ErrUnknownKind, and a stale base on a missing record is NotFound.
func TestBadRequests(t *testing.T, h Harness) {
	worlds(t, h, nil, func(t *testing.T, w *world) {
		c := w.client("")
		if _, err := pullRetry(t, c, core.PullRequest{Kind: NoteKind, PageToken: "forged-token"}); !errors.Is(err, core.ErrBadCursor) {
			t.Errorf("pull with a forged token: %v, want ErrBadCursor", err)
		}
		if _, err := pullRetry(t, c, core.PullRequest{Kind: "tt_no_such_kind"}); !errors.Is(err, core.ErrUnknownKind) {
			t.Errorf("pull of an unknown kind: %v, want ErrUnknownKind", err)
		}
		res := push(t, c, []core.Op{{OpID: "base-on-missing", Kind: NoteKind, ID: "nothing", Type: core.OpUpsert,
			Payload: []byte(`{"w":"x"}`), BaseUpdatedAt: t0}})
		if res[0].Status != core.StatusNotFound {
			t.Errorf("an update with a base of a missing record answered %s, want not_found", res[0].Status)
		}
		res = push(t, c, []core.Op{{OpID: "delete-missing", Kind: NoteKind, ID: "nothing", Type: core.OpDelete}})
		if res[0].Status != core.StatusNotFound {
			t.Errorf("a delete of a missing record answered %s, want not_found", res[0].Status)
		}
	})
}

// TestBatch: a Batcher advertises a positive limit; ops for one record after
// one that is not applied are skipped, other records go on.
func TestBatch(t *testing.T, h Harness) {
	if !h.Features().Batch {
		t.Skip("Features.Batch not claimed")
	}
	worlds(t, h, nil, func(t *testing.T, w *world) {
		c := w.client("")
		b, ok := c.(core.Batcher)
		if !ok {
			t.Fatalf("Features.Batch is claimed but %T is not a core.Batcher", c)
		}
		var lim core.BatchLimits
		var err error
		for range 20 {
			if lim, err = b.BatchLimits(t.Context()); err == nil || !core.Retryable(err) {
				break
			}
		}
		if err != nil || lim.MaxOps <= 0 {
			t.Fatalf("BatchLimits = %+v, %v; want a positive MaxOps", lim, err)
		}
		first := push(t, c, []core.Op{{OpID: "b0", Kind: NoteKind, ID: "x", Type: core.OpUpsert, Payload: []byte(`{"w":"b0"}`)}})
		if first[0].Status != core.StatusApplied {
			t.Fatalf("create answered %s", first[0].Status)
		}
		ops := []core.Op{
			{OpID: "b1", Kind: NoteKind, ID: "x", Type: core.OpUpsert, Payload: []byte(`{"w":"b1"}`)}, // a create over x: conflict
			{OpID: "b2", Kind: NoteKind, ID: "x", Type: core.OpUpsert, Payload: []byte(`{"w":"b2"}`), BaseUpdatedAt: first[0].Record.UpdatedAt},
			{OpID: "b3", Kind: NoteKind, ID: "y", Type: core.OpUpsert, Payload: []byte(`{"w":"b3"}`)},
		}
		res := push(t, c, ops)
		want := []core.PushStatus{core.StatusConflict, core.StatusSkipped, core.StatusApplied}
		for i := range want {
			if res[i].Status != want[i] {
				t.Errorf("op %s answered %s, want %s", ops[i].OpID, res[i].Status, want[i])
			}
		}
		if res[0].Record == nil || !res[0].Record.UpdatedAt.Equal(first[0].Record.UpdatedAt) {
			t.Errorf("the conflict does not carry the current record")
		}
		w.checkAppliedOnce(t)
	})
}

// TestGet: a Getter fetches a live record, a tombstone, and answers
// ErrNotFound for a missing one.
func TestGet(t *testing.T, h Harness) {
	if !h.Features().Getter {
		t.Skip("Features.Getter not claimed")
	}
	worlds(t, h, nil, func(t *testing.T, w *world) {
		a := w.replica("a", replicaOptions{})
		a.put(t, "live", map[string]any{"w": "a-0", "v": "x"})
		a.put(t, "dead", map[string]any{"w": "a-1"})
		w.sync(t, a)
		a.del(t, "dead")
		w.sync(t, a)
		c := w.client("")
		g, ok := c.(core.Getter)
		if !ok {
			t.Fatalf("Features.Getter is claimed but %T is not a core.Getter", c)
		}
		rec, err := getRetry(t, g, NoteKind, "live")
		auth, _ := w.authorityRecord(t, "live")
		if err != nil || !rec.UpdatedAt.Equal(auth.UpdatedAt) || fieldsOf(t, rec)["v"] != "x" {
			t.Errorf("get live = %+v, %v", rec, err)
		}
		rec, err = getRetry(t, g, NoteKind, "dead")
		if err != nil || !rec.Deleted() {
			t.Errorf("get of a tombstone = deleted %v, %v; want the tombstone", rec.Deleted(), err)
		}
		if _, err := getRetry(t, g, NoteKind, "never"); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("get of a missing record: %v, want ErrNotFound", err)
		}
	})
}

// TestRealtime: a subscriber hears of a write made after Subscribe returned:
// a notice for the kind at or after the write's version, or a gap notice
// after which a pull has the write.
func TestRealtime(t *testing.T, h Harness) {
	if !h.Features().Realtime {
		t.Skip("Features.Realtime not claimed")
	}
	worlds(t, h, nil, func(t *testing.T, w *world) {
		c := w.client("")
		s, ok := c.(core.Subscriber)
		if !ok {
			t.Fatalf("Features.Realtime is claimed but %T is not a core.Subscriber", c)
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var ch <-chan core.Notice
		var err error
		for range 20 {
			if ch, err = s.Subscribe(ctx, []string{NoteKind}); err == nil || !core.Retryable(err) {
				break
			}
		}
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		a := w.replica("a", replicaOptions{})
		a.put(t, "rt", map[string]any{"w": "a-0"})
		w.sync(t, a)
		auth, _ := w.authorityRecord(t, "rt")
		for {
			n, ok := <-ch
			if !ok {
				t.Fatal("the notice stream closed before announcing the write")
			}
			if n.Gap {
				if p, err := pullRetry(t, c, core.PullRequest{Kind: NoteKind}); err != nil || len(p.Records) == 0 {
					t.Fatalf("pull after a gap: %d records, %v", len(p.Records), err)
				}
				return
			}
			if n.Kind != NoteKind {
				t.Fatalf("notice for kind %q, subscribed to %q only", n.Kind, NoteKind)
			}
			if !n.UpdatedAt.Before(auth.UpdatedAt) {
				if n.UpdatedAt.Equal(auth.UpdatedAt) && n.ID != "rt" {
					t.Errorf("notice at the write's version names id %q, want rt", n.ID)
				}
				return
			}
		}
	})
}
