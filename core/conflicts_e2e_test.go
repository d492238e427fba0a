package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

// The end-to-end conflict tests of issue 3: replicas on SQLite files edit
// the same record offline and sync through the reference authority (on its
// own SQLite file); every strategy and every manual resolution is checked on
// the authority, on the replicas, in the events and in the push count.

// canon renders a value (a map, a record's JSON) as canonical JSON: sorted
// keys, numbers as written.
func canon(t testing.TB, v any) string {
	t.Helper()
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		raw = x
	case []byte:
		raw = x
	case string:
		raw = []byte(x)
	default:
		var err error
		if raw, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return "null"
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		t.Fatalf("canon %s: %v", raw, err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// obj parses a JSON object literal.
func obj(t testing.TB, s string) map[string]any {
	t.Helper()
	m, err := core.Record{Data: json.RawMessage(s)}.Fields()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// drain returns the events buffered on sub (Sync emits synchronously, so
// after it returns every event of the call is there).
func drain(sub *core.Subscription) []core.Event {
	var out []core.Event
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

func eventsOf[E core.Event](evs []core.Event) []E {
	var out []E
	for _, ev := range evs {
		if e, ok := ev.(E); ok {
			out = append(out, e)
		}
	}
	return out
}

// cworld is an authority on a SQLite file with a frozen clock (versions
// then step by 1µs, deterministically), and the store under it.
type cworld struct {
	svc  *server.Service
	auth *sqlite.Store
}

func newCWorld(t testing.TB, opts *server.Options) *cworld {
	t.Helper()
	var o server.Options
	if opts != nil {
		o = *opts
	}
	if o.Tables == nil {
		o.Tables = []core.Table{projects, todos, notes}
	}
	if o.Clock == nil {
		o.Clock = core.NewManualClock(t0)
	}
	auth := openStore(t, "authority.db")
	svc, err := server.New(context.Background(), auth, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return &cworld{svc: svc, auth: auth}
}

// replica opens a replica behind a recording wire, with its own clock.
func (w *cworld) replica(t testing.TB, at time.Time, conflicts core.Conflicts) (*replica, *wire, *core.ManualClock) {
	t.Helper()
	clock := core.NewManualClock(at)
	wr := &wire{inner: w.svc}
	return newReplica(t, wr, &core.Options{Clock: clock, Conflicts: conflicts}), wr, clock
}

// hardRemove deletes a record from the authority's store outright, as a
// retention purge of old tombstones or an administrator would: afterwards
// the authority answers NotFound for it.
func (w *cworld) hardRemove(t testing.TB, kind, id string) {
	t.Helper()
	err := w.auth.Update(context.Background(), func(ctx context.Context, tx core.Tx) error {
		return tx.Remove(ctx, kind, id)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := authGet(t, w.svc, kind, id); ok {
		t.Fatal("the record is still at the authority")
	}
}

func localData(t testing.TB, r *replica, kind, id string) (core.Record, bool) {
	t.Helper()
	rec, err := r.eng.Get(context.Background(), kind, id)
	if errors.Is(err, core.ErrNotFound) {
		return core.Record{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return rec, true
}

// liveLocally reports whether kind/id is a live row of r (neither a
// tombstone nor deleted locally).
func liveLocally(t testing.TB, r *replica, kind, id string) bool {
	t.Helper()
	recs, err := r.eng.List(context.Background(), kind, core.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(recs, func(rec core.Record) bool { return rec.ID == id })
}

// checkPushCounts fails when an op was pushed more than twice in one Sync
// (one push and one resolution push, invariant 8).
func checkPushCounts(t testing.TB, w *wire) {
	t.Helper()
	for id, n := range w.pushCount() {
		if n > 2 {
			t.Fatalf("op %s pushed %d times in one sync", id, n)
		}
	}
}

// The data of the scene: the base version, what a second replica (B) makes
// of it on the authority, and what the first (A) makes of it offline.
const (
	sceneBase   = `{"mood":3,"notes":"Old","tags":["a","b"]}`
	sceneServer = `{"mood":3,"energy":7,"notes":"Old","tags":["a","b","c"]}`
	sceneLocal  = `{"mood":5,"notes":"My notes","tags":["b"]}`
	// autoPreserve: the fields A changed take A's values, B's energy stays,
	// the tag A removed stays removed and the tag B added stays.
	sceneMerged = `{"energy":7,"mood":5,"notes":"My notes","tags":["b","c"]}`
)

var sceneChanged = []string{"mood", "notes", "tags"}

// scene: A, B and C share note x at the base version; B changes it on the
// authority (C pulls that); A, offline, edits (or deletes) it.
type scene struct {
	w        *cworld
	a, b, c  *replica
	aw       *wire
	sub      *core.Subscription
	v1, v2   core.Record // the authority's base and B's version
	aClock   *core.ManualClock
	aDeletes bool
}

// newScene builds the scene with strategy for A. aLater makes A's edit
// later than B's (A's clock runs one minute ahead of B's; otherwise one
// behind), for lastWriteWins.
func newScene(t *testing.T, strategy core.Resolver, aLater, aDeletes bool) *scene {
	t.Helper()
	ctx := context.Background()
	w := newCWorld(t, nil)
	aAt, bAt := t0.Add(time.Minute), t0.Add(2*time.Minute)
	if aLater {
		aAt, bAt = bAt, aAt
	}
	s := &scene{w: w, aDeletes: aDeletes}
	s.a, s.aw, s.aClock = w.replica(t, aAt, core.Conflicts{Default: strategy})
	s.b, _, _ = w.replica(t, bAt, core.Conflicts{})
	s.c, _, _ = w.replica(t, t0, core.Conflicts{})
	if err := s.a.notes.Put(ctx, "x", obj(t, sceneBase)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, s.a)
	mustSync(t, s.b)
	s.v1, _ = authGet(t, w.svc, "note", "x")
	if err := s.b.notes.Put(ctx, "x", obj(t, sceneServer), core.Changed("energy", "tags")); err != nil {
		t.Fatal(err)
	}
	mustSync(t, s.b)
	mustSync(t, s.c)
	s.v2, _ = authGet(t, w.svc, "note", "x")
	if aDeletes {
		if err := s.a.notes.Delete(ctx, "x"); err != nil {
			t.Fatal(err)
		}
	} else if err := s.a.notes.Put(ctx, "x", obj(t, sceneLocal), core.Changed(sceneChanged...)); err != nil {
		t.Fatal(err)
	}
	s.aClock.Advance(time.Second)
	s.sub = s.a.eng.Subscribe(1024)
	t.Cleanup(s.sub.Close)
	s.aw.reset()
	return s
}

// checkDetected checks the ConflictDetected event of the scene.
func (s *scene) checkDetected(t *testing.T, evs []core.Event, strategy string) core.Conflict {
	t.Helper()
	det := eventsOf[core.ConflictDetected](evs)
	if len(det) != 1 {
		t.Fatalf("ConflictDetected events: %d, want 1 (%v)", len(det), evs)
	}
	c := det[0].Conflict
	if c.Strategy != strategy || c.Kind != "note" || c.ID != "x" {
		t.Fatalf("detected %s/%s with strategy %q, want note/x with %q", c.Kind, c.ID, c.Strategy, strategy)
	}
	if c.Server == nil || canon(t, c.Server.Data) != canon(t, sceneServer) || !c.Server.UpdatedAt.Equal(s.v2.UpdatedAt) {
		t.Fatalf("conflict server = %+v", c.Server)
	}
	if c.DetectedAt.IsZero() || !c.DetectedAt.Equal(core.Micro(s.aClock.Now())) {
		t.Fatalf("detectedAt = %v, want A's clock %v", c.DetectedAt, s.aClock.Now())
	}
	if s.aDeletes {
		if c.Op.Type != core.OpDelete || c.Local != nil {
			t.Fatalf("a delete's conflict: op %s, local %+v", c.Op.Type, c.Local)
		}
		return c
	}
	if c.Local == nil || canon(t, c.Local.Data) != canon(t, sceneLocal) {
		t.Fatalf("conflict local = %+v", c.Local)
	}
	if c.Base == nil || canon(t, c.Base.Data) != canon(t, sceneBase) || !c.Base.UpdatedAt.Equal(s.v1.UpdatedAt) {
		t.Fatalf("conflict base = %+v", c.Base)
	}
	if !slices.Equal(c.ChangedFields, sceneChanged) {
		t.Fatalf("changed fields = %v", c.ChangedFields)
	}
	return c
}

// strategyCase is one way to resolve the scene.
type strategyCase struct {
	name     string
	strategy core.Resolver
	named    string // the strategy name in events
	aLater   bool
	action   core.Action
	want     string // the authority's data afterwards
	pushes   int    // Push calls of A's first sync
	forced   bool   // the resolution push is forced
	// want3 is the authority's data when a third writer (C sets energy to
	// 8) lands before the resolution push, after A's next sync.
	want3 string
}

func mergeFn(calls *[][3]map[string]any) core.Resolver {
	return core.MergeWith(func(_ context.Context, base, local, server map[string]any) (map[string]any, error) {
		*calls = append(*calls, [3]map[string]any{base, local, server})
		m := core.ThreeWayMerge(base, local, server, nil)
		m["merged"] = true
		return m, nil
	})
}

func manualOf(fn func(c core.Conflict) core.Resolution) core.Resolver {
	return core.Manual(core.ResolverFunc(func(_ context.Context, c core.Conflict) (core.Resolution, error) {
		return fn(c), nil
	}))
}

// manualMerge resolves with a three-way merge of its own, tagged.
func manualMerge(t testing.TB) core.Resolver {
	return manualOf(func(c core.Conflict) core.Resolution {
		var base map[string]any
		if c.Base != nil {
			base, _ = c.Base.Fields()
		}
		local, _ := c.Local.Fields()
		server, _ := c.Server.Fields()
		m := core.ThreeWayMerge(base, local, server, c.ChangedFields)
		m["by"] = "manual"
		return core.AcceptMerged(m)
	})
}

func strategyCases(t testing.TB, calls *[][3]map[string]any) []strategyCase {
	const (
		merged3      = `{"energy":8,"mood":5,"notes":"My notes","tags":["b","c"]}`
		fnMerged     = `{"energy":7,"merged":true,"mood":5,"notes":"My notes","tags":["b","c"]}`
		fnMerged3    = `{"energy":8,"merged":true,"mood":5,"notes":"My notes","tags":["b","c"]}`
		manMerged    = `{"by":"manual","energy":7,"mood":5,"notes":"My notes","tags":["b","c"]}`
		manMerged3   = `{"by":"manual","energy":8,"mood":5,"notes":"My notes","tags":["b","c"]}`
		acceptServer = core.ActionAcceptServer
	)
	return []strategyCase{
		{name: "autoPreserve", strategy: core.AutoPreserve, named: core.StrategyAutoPreserve,
			action: core.ActionAcceptMerged, want: sceneMerged, pushes: 2, want3: merged3},
		{name: "default is autoPreserve", strategy: nil, named: core.StrategyAutoPreserve,
			action: core.ActionAcceptMerged, want: sceneMerged, pushes: 2, want3: merged3},
		{name: "serverWins", strategy: core.ServerWins, named: core.StrategyServerWins,
			action: acceptServer, want: sceneServer, pushes: 1},
		{name: "clientWins", strategy: core.ClientWins, named: core.StrategyClientWins,
			action: core.ActionAcceptClient, want: sceneLocal, pushes: 2, forced: true, want3: sceneLocal},
		{name: "lastWriteWins/local later", strategy: core.LastWriteWins, named: core.StrategyLastWriteWins, aLater: true,
			action: core.ActionAcceptClient, want: sceneLocal, pushes: 2, forced: true, want3: sceneLocal},
		{name: "lastWriteWins/server later", strategy: core.LastWriteWins, named: core.StrategyLastWriteWins,
			action: acceptServer, want: sceneServer, pushes: 1},
		{name: "merge", strategy: mergeFn(calls), named: core.StrategyMerge,
			action: core.ActionAcceptMerged, want: fnMerged, pushes: 2, want3: fnMerged3},
		{name: "manual/AcceptServer", strategy: manualOf(func(core.Conflict) core.Resolution { return core.AcceptServer }),
			named: core.StrategyManual, action: acceptServer, want: sceneServer, pushes: 1},
		{name: "manual/AcceptClient", strategy: manualOf(func(core.Conflict) core.Resolution { return core.AcceptClient }),
			named: core.StrategyManual, action: core.ActionAcceptClient, want: sceneLocal, pushes: 2, forced: true, want3: sceneLocal},
		{name: "manual/AcceptMerged", strategy: manualMerge(t),
			named: core.StrategyManual, action: core.ActionAcceptMerged, want: manMerged, pushes: 2, want3: manMerged3},
		{name: "manual/Discard", strategy: manualOf(func(core.Conflict) core.Resolution { return core.Discard }),
			named: core.StrategyManual, action: core.ActionDiscard, want: sceneServer, pushes: 1},
		{name: "manual/Defer", strategy: manualOf(func(core.Conflict) core.Resolution { return core.Defer }),
			named: core.StrategyManual, action: core.ActionDefer, want: sceneServer, pushes: 1},
	}
}

func TestConflictE2EStrategies(t *testing.T) {
	ctx := context.Background()
	for i, tc := range strategyCases(t, nil) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls [][3]map[string]any
			tc := strategyCases(t, &calls)[i]
			s := newScene(t, tc.strategy, tc.aLater, false)
			st := mustSync(t, s.a)
			evs := drain(s.sub)
			checkPushCounts(t, s.aw)
			if len(s.aw.pushes) != tc.pushes {
				t.Fatalf("A's sync made %d pushes, want %d", len(s.aw.pushes), tc.pushes)
			}
			if st.Conflicts != 1 {
				t.Fatalf("stats conflicts = %d", st.Conflicts)
			}
			auth, _ := authGet(t, s.w.svc, "note", "x")
			if got := canon(t, auth.Data); got != canon(t, tc.want) {
				t.Fatalf("authority = %s, want %s", got, canon(t, tc.want))
			}
			c := s.checkDetected(t, evs, tc.named)
			if tc.pushes == 2 {
				res := s.aw.pushes[1][0]
				if res.Force != tc.forced {
					t.Fatalf("resolution push force = %v, want %v", res.Force, tc.forced)
				}
				if !tc.forced && !res.BaseUpdatedAt.Equal(s.v2.UpdatedAt) {
					t.Fatalf("merged result pushed with base %v, want the conflicting version %v", res.BaseUpdatedAt, s.v2.UpdatedAt)
				}
			}
			if tc.name == "merge" {
				if len(calls) != 1 || canon(t, calls[0][0]) != canon(t, sceneBase) ||
					canon(t, calls[0][1]) != canon(t, sceneLocal) || canon(t, calls[0][2]) != canon(t, sceneServer) {
					t.Fatalf("merge function calls = %v", calls)
				}
			}

			local, _ := localData(t, s.a, "note", "x")
			if tc.action == core.ActionDefer {
				if st.Resolved != 0 {
					t.Fatalf("resolved = %d", st.Resolved)
				}
				if d := eventsOf[core.ConflictDeferred](evs); len(d) != 1 || d[0].Conflict.Op.OpID != c.Op.OpID {
					t.Fatalf("ConflictDeferred events = %v", d)
				}
				if len(eventsOf[core.ConflictResolved](evs)) != 0 {
					t.Fatal("a deferred conflict reported resolved")
				}
				if canon(t, local.Data) != canon(t, sceneLocal) {
					t.Fatalf("the deferred row lost the local edit: %s", local.Data)
				}
				ops := s.a.ops(t)
				if len(ops) != 1 || ops[0].State != core.StateDeferred {
					t.Fatalf("outbox = %+v", ops)
				}
				inbox, err := s.a.eng.Conflicts(ctx, core.ConflictFilter{})
				if err != nil || len(inbox) != 1 || inbox[0].OpID != ops[0].OpID {
					t.Fatalf("inbox = %+v, %v", inbox, err)
				}
				s.aw.reset()
				mustSync(t, s.a)
				if len(s.aw.pushes) != 0 {
					t.Fatalf("the deferred op was pushed again: %d pushes", len(s.aw.pushes))
				}
				return
			}
			if st.Resolved != 1 {
				t.Fatalf("resolved = %d", st.Resolved)
			}
			res := eventsOf[core.ConflictResolved](evs)
			if len(res) != 1 || res[0].Resolution.Action != tc.action || canon(t, res[0].Data) != canon(t, tc.want) {
				t.Fatalf("ConflictResolved = %+v, want %s with %s", res, tc.action, tc.want)
			}
			merges := eventsOf[core.DataMerged](evs)
			if tc.action == core.ActionAcceptMerged {
				if len(merges) != 1 || canon(t, merges[0].Local) != canon(t, sceneLocal) ||
					canon(t, merges[0].Server) != canon(t, sceneServer) || canon(t, merges[0].Merged) != canon(t, tc.want) {
					t.Fatalf("DataMerged = %+v", merges)
				}
			} else if len(merges) != 0 {
				t.Fatalf("DataMerged for %s: %+v", tc.action, merges)
			}
			if ops := s.a.ops(t); len(ops) != 0 {
				t.Fatalf("outbox not empty: %+v", ops)
			}
			if canon(t, local.Data) != canon(t, tc.want) || !local.UpdatedAt.Equal(auth.UpdatedAt) {
				t.Fatalf("A's row = %s@%v, authority %s@%v", local.Data, local.UpdatedAt, auth.Data, auth.UpdatedAt)
			}
			mustSync(t, s.b)
			if b, _ := localData(t, s.b, "note", "x"); canon(t, b.Data) != canon(t, tc.want) {
				t.Fatalf("B's row = %s", b.Data)
			}
		})
	}
}

// TestConflictE2EThirdWriter lets a third replica write and sync between the
// conflict and the resolution push. Merged results are pushed unforced with
// the conflicting version as base, so the third write makes a new conflict
// (resolved at A's next sync) and survives; clientWins and AcceptClient
// force, and overwrite it.
func TestConflictE2EThirdWriter(t *testing.T) {
	for i, tc := range strategyCases(t, nil) {
		if tc.pushes != 2 {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls [][3]map[string]any
			tc := strategyCases(t, &calls)[i]
			s := newScene(t, tc.strategy, tc.aLater, false)
			n := 0
			var third core.Record
			s.aw.set(func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
				if n++; n == 2 { // the resolution push: C writes first
					c := obj(t, sceneServer)
					c["energy"] = 8
					if err := s.c.notes.Put(ctx, "x", c, core.Changed("energy")); err != nil {
						return nil, err
					}
					if st, err := s.c.eng.Sync(ctx); err != nil || st.Pushed != 1 || st.Conflicts != 0 {
						return nil, fmt.Errorf("third writer: %+v, %v", st, err)
					}
					third, _ = authGet(t, s.w.svc, "note", "x")
				}
				return inner.Push(ctx, ops)
			})
			st := mustSync(t, s.a)
			checkPushCounts(t, s.aw)
			if len(s.aw.pushes) != 2 {
				t.Fatalf("pushes = %d, want 2", len(s.aw.pushes))
			}
			auth, _ := authGet(t, s.w.svc, "note", "x")
			if tc.forced {
				if !s.aw.pushes[1][0].Force {
					t.Fatal("the resolution push is not forced")
				}
				if canon(t, auth.Data) != canon(t, tc.want3) || len(s.a.ops(t)) != 0 {
					t.Fatalf("forced: authority %s, outbox %+v", auth.Data, s.a.ops(t))
				}
				return
			}
			// The resolution push met the third write: the op waits for the
			// next sync; nothing was overwritten.
			if !auth.UpdatedAt.Equal(third.UpdatedAt) || field(t, auth, "energy") != json.Number("8") {
				t.Fatalf("the third write was overwritten: %s", auth.Data)
			}
			ops := s.a.ops(t)
			if len(ops) != 1 || ops[0].State != core.StatePending || st.Resolved != 1 {
				t.Fatalf("after a conflicting resolution push: ops %+v, stats %+v", ops, st)
			}
			s.aw.set(nil)
			s.aw.reset()
			drain(s.sub)
			st = mustSync(t, s.a)
			checkPushCounts(t, s.aw)
			auth, _ = authGet(t, s.w.svc, "note", "x")
			if canon(t, auth.Data) != canon(t, tc.want3) {
				t.Fatalf("after the next sync the authority = %s, want %s", canon(t, auth.Data), canon(t, tc.want3))
			}
			if st.Conflicts != 1 || st.Resolved != 1 || len(s.a.ops(t)) != 0 {
				t.Fatalf("stats %+v, outbox %+v", st, s.a.ops(t))
			}
			if det := eventsOf[core.ConflictDetected](drain(s.sub)); len(det) != 1 || !det[0].Conflict.Server.UpdatedAt.Equal(third.UpdatedAt) {
				t.Fatalf("second conflict = %+v", det)
			}
			if local, _ := localData(t, s.a, "note", "x"); canon(t, local.Data) != canon(t, tc.want3) {
				t.Fatalf("A's row = %s", local.Data)
			}
		})
	}
}

// TestConflictE2EDeleteMeetsNewerVersion: A deletes what B changed.
// clientWins forces the delete; serverWins, autoPreserve and merge keep the
// data (restored locally, the conflict reported); lastWriteWins compares
// times; manual asks.
func TestConflictE2EDeleteMeetsNewerVersion(t *testing.T) {
	ctx := context.Background()
	type deleteCase struct {
		name     string
		strategy core.Resolver
		named    string
		aLater   bool
		deleted  bool
		action   core.Action
		deferred bool
	}
	casesWith := func(calls *[][3]map[string]any, asked *[]core.Conflict) []deleteCase {
		ask := func(r core.Resolution) core.Resolver {
			return manualOf(func(c core.Conflict) core.Resolution { *asked = append(*asked, c); return r })
		}
		return []deleteCase{
			{"autoPreserve", core.AutoPreserve, core.StrategyAutoPreserve, false, false, core.ActionAcceptServer, false},
			{"serverWins", core.ServerWins, core.StrategyServerWins, false, false, core.ActionAcceptServer, false},
			{"merge", mergeFn(calls), core.StrategyMerge, false, false, core.ActionAcceptServer, false},
			{"clientWins", core.ClientWins, core.StrategyClientWins, false, true, core.ActionAcceptClient, false},
			{"lastWriteWins/delete later", core.LastWriteWins, core.StrategyLastWriteWins, true, true, core.ActionAcceptClient, false},
			{"lastWriteWins/server later", core.LastWriteWins, core.StrategyLastWriteWins, false, false, core.ActionAcceptServer, false},
			{"manual/AcceptClient", ask(core.AcceptClient), core.StrategyManual, false, true, core.ActionAcceptClient, false},
			{"manual/Discard", ask(core.Discard), core.StrategyManual, false, false, core.ActionDiscard, false},
			{"manual/Defer", ask(core.Defer), core.StrategyManual, false, false, core.ActionDefer, true},
		}
	}
	for i, tc := range casesWith(new([][3]map[string]any), new([]core.Conflict)) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls [][3]map[string]any
			var asked []core.Conflict
			tc := casesWith(&calls, &asked)[i]
			s := newScene(t, tc.strategy, tc.aLater, true)
			st := mustSync(t, s.a)
			evs := drain(s.sub)
			checkPushCounts(t, s.aw)
			s.checkDetected(t, evs, tc.named)
			if len(calls) != 0 {
				t.Fatal("the merge function was called for a delete")
			}
			if tc.named == core.StrategyManual && (len(asked) != 1 || asked[0].Op.Type != core.OpDelete) {
				t.Fatalf("manual resolver asked %d times", len(asked))
			}
			auth, _ := authGet(t, s.w.svc, "note", "x")
			wantPushes := 1
			if tc.deleted {
				wantPushes = 2
			}
			if len(s.aw.pushes) != wantPushes {
				t.Fatalf("pushes = %d, want %d", len(s.aw.pushes), wantPushes)
			}
			if tc.deferred {
				if auth.Deleted() || liveLocally(t, s.a, "note", "x") {
					t.Fatal("a deferred delete: the authority must keep the record and A its delete")
				}
				inbox, _ := s.a.eng.Conflicts(ctx, core.ConflictFilter{Kinds: []string{"note"}, ID: "x"})
				if len(inbox) != 1 || inbox[0].Type != core.OpDelete || inbox[0].Local != nil {
					t.Fatalf("inbox = %+v", inbox)
				}
				return
			}
			if auth.Deleted() != tc.deleted {
				t.Fatalf("authority deleted = %v, want %v", auth.Deleted(), tc.deleted)
			}
			res := eventsOf[core.ConflictResolved](evs)
			if len(res) != 1 || res[0].Resolution.Action != tc.action || st.Resolved != 1 {
				t.Fatalf("ConflictResolved = %+v", res)
			}
			if len(s.a.ops(t)) != 0 {
				t.Fatalf("outbox = %+v", s.a.ops(t))
			}
			local, _ := localData(t, s.a, "note", "x")
			if !local.UpdatedAt.Equal(auth.UpdatedAt) {
				t.Fatalf("A's row at %v, authority at %v", local.UpdatedAt, auth.UpdatedAt)
			}
			if tc.deleted {
				if liveLocally(t, s.a, "note", "x") || !local.Deleted() || res[0].Data != nil {
					t.Fatalf("forced delete: A's row %+v, event data %v", local, res[0].Data)
				}
				mustSync(t, s.b)
				if liveLocally(t, s.b, "note", "x") {
					t.Fatal("B still has the deleted record")
				}
				return
			}
			// The data is kept: the server's version is restored locally.
			if !liveLocally(t, s.a, "note", "x") || canon(t, local.Data) != canon(t, sceneServer) ||
				canon(t, res[0].Data) != canon(t, sceneServer) {
				t.Fatalf("A's row %s (live %v), event data %v", local.Data, liveLocally(t, s.a, "note", "x"), res[0].Data)
			}
			if !auth.UpdatedAt.Equal(s.v2.UpdatedAt) {
				t.Fatal("the authority changed though the delete was dropped")
			}
		})
	}
}

// TestConflictE2ENotFound: the authority no longer has the record. A delete
// is done, whatever the strategy; an upsert with a base is a conflict with no
// server record, and the resolver decides: re-create or drop.
func TestConflictE2ENotFound(t *testing.T) {
	ctx := context.Background()
	type notFoundCase struct {
		name      string
		strategy  core.Resolver
		named     string
		recreated bool
	}
	casesWith := func(calls *[][3]map[string]any, asked *[]core.Conflict) []notFoundCase {
		ask := func(r core.Resolution) core.Resolver {
			return manualOf(func(c core.Conflict) core.Resolution { *asked = append(*asked, c); return r })
		}
		return []notFoundCase{
			{"autoPreserve", core.AutoPreserve, core.StrategyAutoPreserve, true},
			{"serverWins", core.ServerWins, core.StrategyServerWins, false},
			{"clientWins", core.ClientWins, core.StrategyClientWins, true},
			{"lastWriteWins", core.LastWriteWins, core.StrategyLastWriteWins, true},
			{"merge", mergeFn(calls), core.StrategyMerge, true},
			{"manual/AcceptClient", ask(core.AcceptClient), core.StrategyManual, true},
			{"manual/Discard", ask(core.Discard), core.StrategyManual, false},
		}
	}
	setup := func(t *testing.T, strategy core.Resolver) (*cworld, *replica, *wire, *core.Subscription) {
		w := newCWorld(t, nil)
		a, aw, _ := w.replica(t, t0, core.Conflicts{Default: strategy})
		if err := a.notes.Put(ctx, "x", obj(t, sceneBase)); err != nil {
			t.Fatal(err)
		}
		mustSync(t, a)
		w.hardRemove(t, "note", "x")
		sub := a.eng.Subscribe(1024)
		t.Cleanup(sub.Close)
		aw.reset()
		return w, a, aw, sub
	}
	for i, tc := range casesWith(new([][3]map[string]any), new([]core.Conflict)) {
		t.Run(tc.name+"/delete is done", func(t *testing.T) {
			t.Parallel()
			var calls [][3]map[string]any
			var asked []core.Conflict
			tc := casesWith(&calls, &asked)[i]
			_, a, aw, sub := setup(t, tc.strategy)
			if err := a.notes.Delete(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			st := mustSync(t, a)
			evs := drain(sub)
			if len(aw.pushes) != 1 || st.Conflicts != 0 || len(eventsOf[core.ConflictDetected](evs)) != 0 || len(asked)+len(calls) != 0 {
				t.Fatalf("pushes %d, stats %+v", len(aw.pushes), st)
			}
			if len(a.ops(t)) != 0 {
				t.Fatalf("outbox = %+v", a.ops(t))
			}
			if _, ok := localData(t, a, "note", "x"); ok {
				t.Fatal("the row of a record the authority lacks is still there")
			}
		})
		t.Run(tc.name+"/upsert", func(t *testing.T) {
			t.Parallel()
			var calls [][3]map[string]any
			var asked []core.Conflict
			tc := casesWith(&calls, &asked)[i]
			w, a, aw, sub := setup(t, tc.strategy)
			if err := a.notes.Put(ctx, "x", obj(t, sceneLocal), core.Changed(sceneChanged...)); err != nil {
				t.Fatal(err)
			}
			st := mustSync(t, a)
			evs := drain(sub)
			checkPushCounts(t, aw)
			det := eventsOf[core.ConflictDetected](evs)
			if st.Conflicts != 1 || len(det) != 1 || det[0].Conflict.Server != nil || det[0].Conflict.Strategy != tc.named {
				t.Fatalf("stats %+v, detected %+v", st, det)
			}
			if len(calls) != 0 {
				t.Fatal("the merge function was called without a server record")
			}
			if tc.named == core.StrategyManual && (len(asked) != 1 || asked[0].Server != nil) {
				t.Fatalf("manual asked %+v", asked)
			}
			if len(a.ops(t)) != 0 {
				t.Fatalf("outbox = %+v", a.ops(t))
			}
			auth, ok := authGet(t, w.svc, "note", "x")
			local, hasLocal := localData(t, a, "note", "x")
			if tc.recreated {
				if len(aw.pushes) != 2 || !ok || canon(t, auth.Data) != canon(t, sceneLocal) ||
					!hasLocal || !local.UpdatedAt.Equal(auth.UpdatedAt) {
					t.Fatalf("re-create: pushes %d, authority %s (%v), row %+v", len(aw.pushes), auth.Data, ok, local)
				}
				return
			}
			if len(aw.pushes) != 1 || ok || hasLocal {
				t.Fatalf("drop: pushes %d, authority has it %v, row %v", len(aw.pushes), ok, hasLocal)
			}
		})
	}
}

// TestConflictE2ESeedExample is the seed's example through the engine, and
// its list cases.
func TestConflictE2ESeedExample(t *testing.T) {
	ctx := context.Background()
	run := func(t *testing.T, base, server, local string, changedServer, changedLocal []string) core.Record {
		w := newCWorld(t, nil)
		a, _, _ := w.replica(t, t0, core.Conflicts{})
		b, _, _ := w.replica(t, t0, core.Conflicts{})
		_ = a.notes.Put(ctx, "entry", obj(t, base))
		mustSync(t, a)
		mustSync(t, b)
		_ = b.notes.Put(ctx, "entry", obj(t, server), core.Changed(changedServer...))
		mustSync(t, b)
		_ = a.notes.Put(ctx, "entry", obj(t, local), core.Changed(changedLocal...))
		if st := mustSync(t, a); st.Conflicts != 1 || st.Resolved != 1 {
			t.Fatalf("stats %+v", st)
		}
		mustSync(t, b)
		rec, _ := authGet(t, w.svc, "note", "entry")
		for _, r := range []*replica{a, b} {
			if l, _ := localData(t, r, "note", "entry"); canon(t, l.Data) != canon(t, rec.Data) {
				t.Fatalf("replica %s, authority %s", l.Data, rec.Data)
			}
		}
		return rec
	}
	t.Run("seed", func(t *testing.T) {
		rec := run(t, `{"mood":3,"notes":"Old"}`, `{"mood":3,"energy":7,"notes":"Old"}`,
			`{"mood":5,"notes":"My notes"}`, []string{"energy"}, []string{"mood", "notes"})
		if got, want := canon(t, rec.Data), canon(t, `{"mood":5,"energy":7,"notes":"My notes"}`); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
	t.Run("a tag removed locally stays removed", func(t *testing.T) {
		rec := run(t, `{"tags":["a","b"],"n":1}`, `{"tags":["a","b"],"n":2}`, `{"tags":["b"],"n":1}`,
			[]string{"n"}, []string{"tags"})
		if got, want := canon(t, rec.Data), canon(t, `{"tags":["b"],"n":2}`); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
	t.Run("a tag added on the server stays", func(t *testing.T) {
		rec := run(t, `{"tags":["a"]}`, `{"tags":["a","s"]}`, `{"tags":["a","l"]}`,
			[]string{"tags"}, []string{"tags"})
		if got, want := canon(t, rec.Data), canon(t, `{"tags":["a","s","l"]}`); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
	t.Run("both sides remove and add", func(t *testing.T) {
		rec := run(t, `{"tags":["a","b","c"]}`, `{"tags":["b","c","s"]}`, `{"tags":["a","c","l"]}`,
			[]string{"tags"}, []string{"tags"})
		if got, want := canon(t, rec.Data), canon(t, `{"tags":["c","s","l"]}`); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
}

// TestConflictE2EPerKind: three kinds, three strategies, one sync.
func TestConflictE2EPerKind(t *testing.T) {
	ctx := context.Background()
	w := newCWorld(t, nil)
	a, aw, _ := w.replica(t, t0, core.Conflicts{Default: core.ServerWins,
		Kinds: map[string]core.Resolver{"todo": core.ClientWins, "note": core.AutoPreserve}})
	b, _, _ := w.replica(t, t0, core.Conflicts{})
	_ = a.projs.Put(ctx, "p", map[string]any{"name": "base", "owner": "ann"})
	_ = a.todos.Insert(ctx, &Todo{ID: "t", Title: "base"})
	_ = a.notes.Put(ctx, "n", map[string]any{"text": "base", "n": 1})
	mustSync(t, a)
	mustSync(t, b)
	_ = b.projs.Put(ctx, "p", map[string]any{"name": "server", "owner": "ann"}, core.Changed("name"))
	_ = b.todos.Update(ctx, &Todo{ID: "t", Title: "server", Done: true}, core.Changed("title", "done"))
	_ = b.notes.Put(ctx, "n", map[string]any{"text": "base", "n": 2}, core.Changed("n"))
	mustSync(t, b)
	_ = a.projs.Put(ctx, "p", map[string]any{"name": "local", "owner": "ann"}, core.Changed("name"))
	_ = a.todos.Update(ctx, &Todo{ID: "t", Title: "local"}, core.Changed("title"))
	_ = a.notes.Put(ctx, "n", map[string]any{"text": "local", "n": 1}, core.Changed("text"))
	sub := a.eng.Subscribe(1024)
	defer sub.Close()
	aw.reset()
	st := mustSync(t, a)
	checkPushCounts(t, aw)
	if st.Conflicts != 3 || st.Resolved != 3 || len(aw.pushes) != 2 {
		t.Fatalf("stats %+v, pushes %d", st, len(aw.pushes))
	}
	names := map[string]string{}
	for _, d := range eventsOf[core.ConflictDetected](drain(sub)) {
		names[d.Conflict.Kind] = d.Conflict.Strategy
	}
	if want := map[string]string{"project": core.StrategyServerWins, "todo": core.StrategyClientWins,
		"note": core.StrategyAutoPreserve}; fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("strategies %v, want %v", names, want)
	}
	for _, c := range []struct{ kind, id, want string }{
		{"project", "p", `{"name":"server","owner":"ann"}`},
		{"todo", "t", `{"title":"local","done":false}`},
		{"note", "n", `{"text":"local","n":2}`},
	} {
		rec, _ := authGet(t, w.svc, c.kind, c.id)
		got := obj(t, string(rec.Data))
		delete(got, "id")
		if canon(t, got) != canon(t, c.want) {
			t.Errorf("%s/%s = %s, want %s", c.kind, c.id, rec.Data, c.want)
		}
		l, _ := localData(t, a, c.kind, c.id)
		if !l.UpdatedAt.Equal(rec.UpdatedAt) {
			t.Errorf("%s/%s: A's row at %v, authority at %v", c.kind, c.id, l.UpdatedAt, rec.UpdatedAt)
		}
	}
}

// TestConflictE2EDeferredSurvivesReopen: a deferred conflict outlives the
// engine and the store, is listed with everything an application needs, and
// is resolved afterwards with Engine.Resolve.
func TestConflictE2EDeferredSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	deferAll := manualOf(func(core.Conflict) core.Resolution { return core.Defer })
	for _, variant := range []string{"AcceptMerged", "AcceptServer"} {
		t.Run(variant, func(t *testing.T) {
			w := newCWorld(t, nil)
			path := filepath.Join(t.TempDir(), "a.db")
			clock := core.NewManualClock(t0)
			open := func(strategy core.Resolver) (*sqlite.Store, *core.Engine, *wire) {
				st, err := sqlite.Open(ctx, path, nil)
				if err != nil {
					t.Fatal(err)
				}
				wr := &wire{inner: w.svc}
				eng, err := core.NewEngine(ctx, st, wr, &core.Options{Tables: []core.Table{projects, todos, notes},
					Clock: clock, Conflicts: core.Conflicts{Default: strategy}})
				if err != nil {
					t.Fatal(err)
				}
				return st, eng, wr
			}
			st, eng, _ := open(deferAll)
			b, _, _ := w.replica(t, t0, core.Conflicts{})
			docs := core.DocsFor(eng, notes)
			_ = docs.Put(ctx, "x", obj(t, sceneBase))
			if _, err := eng.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			mustSync(t, b)
			v1, _ := authGet(t, w.svc, "note", "x")
			_ = b.notes.Put(ctx, "x", obj(t, sceneServer), core.Changed("energy", "tags"))
			mustSync(t, b)
			v2, _ := authGet(t, w.svc, "note", "x")
			_ = docs.Put(ctx, "x", obj(t, sceneLocal), core.Changed(sceneChanged...))
			clock.Advance(time.Minute)
			detectedAt := core.Micro(clock.Now())
			if s, err := eng.Sync(ctx); err != nil || s.Conflicts != 1 || s.Resolved != 0 {
				t.Fatalf("sync: %+v, %v", s, err)
			}
			eng.Close()
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Hour)

			st, eng, wr := open(core.AutoPreserve) // another strategy now: the inbox does not care
			defer st.Close()
			defer eng.Close()
			inbox, err := eng.Conflicts(ctx, core.ConflictFilter{Kinds: []string{"note"}, ID: "x"})
			if err != nil || len(inbox) != 1 {
				t.Fatalf("inbox after reopen = %+v, %v", inbox, err)
			}
			en := inbox[0]
			if en.Kind != "note" || en.ID != "x" || en.Type != core.OpUpsert || !en.DetectedAt.Equal(detectedAt) ||
				en.Base == nil || canon(t, en.Base.Data) != canon(t, sceneBase) || !en.Base.UpdatedAt.Equal(v1.UpdatedAt) ||
				en.Local == nil || canon(t, en.Local.Data) != canon(t, sceneLocal) ||
				en.Server == nil || canon(t, en.Server.Data) != canon(t, sceneServer) || !en.Server.UpdatedAt.Equal(v2.UpdatedAt) ||
				!slices.Equal(en.ChangedFields, sceneChanged) {
				t.Fatalf("inbox entry = %+v", en)
			}
			if other, _ := eng.Conflicts(ctx, core.ConflictFilter{Kinds: []string{"todo"}}); len(other) != 0 {
				t.Fatalf("filter by kind: %+v", other)
			}
			sub := eng.Subscribe(256)
			defer sub.Close()
			wr.reset()
			switch variant {
			case "AcceptMerged":
				merged := obj(t, sceneMerged)
				merged["resolved"] = "later"
				if err := eng.Resolve(ctx, en.OpID, core.AcceptMerged(merged)); err != nil {
					t.Fatal(err)
				}
				evs := drain(sub)
				if r := eventsOf[core.ConflictResolved](evs); len(r) != 1 || canon(t, r[0].Data) != canon(t, merged) {
					t.Fatalf("ConflictResolved = %+v", r)
				}
				if m := eventsOf[core.DataMerged](evs); len(m) != 1 || canon(t, m[0].Merged) != canon(t, merged) {
					t.Fatalf("DataMerged = %+v", m)
				}
				if s, err := eng.Sync(ctx); err != nil || s.Pushed != 1 || s.Conflicts != 0 {
					t.Fatalf("sync after Resolve: %+v, %v", s, err)
				}
				if p := wr.pushes; len(p) != 1 || p[0][0].Force || !p[0][0].BaseUpdatedAt.Equal(v2.UpdatedAt) {
					t.Fatalf("pushes = %+v", p)
				}
				auth, _ := authGet(t, w.svc, "note", "x")
				if canon(t, auth.Data) != canon(t, merged) {
					t.Fatalf("authority = %s", auth.Data)
				}
			case "AcceptServer":
				// The server moved on since the conflict was stored: Resolve
				// takes its current version.
				_ = b.notes.Put(ctx, "x", map[string]any{"mood": 9}, core.Changed("mood"))
				mustSync(t, b)
				v3, _ := authGet(t, w.svc, "note", "x")
				if err := eng.Resolve(ctx, en.OpID, core.AcceptServer); err != nil {
					t.Fatal(err)
				}
				if r := eventsOf[core.ConflictResolved](drain(sub)); len(r) != 1 || canon(t, r[0].Data) != canon(t, v3.Data) {
					t.Fatalf("ConflictResolved = %+v", r)
				}
				rec, err := eng.Get(ctx, "note", "x")
				if err != nil || canon(t, rec.Data) != canon(t, v3.Data) || !rec.UpdatedAt.Equal(v3.UpdatedAt) {
					t.Fatalf("row = %+v, authority %+v", rec, v3)
				}
				if s, err := eng.Sync(ctx); err != nil || len(wr.pushes) != 0 || s.Stuck != 0 {
					t.Fatalf("sync after Resolve: %+v, %v, pushes %d", s, err, len(wr.pushes))
				}
			}
			if inbox, _ := eng.Conflicts(ctx, core.ConflictFilter{}); len(inbox) != 0 {
				t.Fatalf("inbox after Resolve = %+v", inbox)
			}
			if err := eng.Resolve(ctx, en.OpID, core.AcceptServer); !errors.Is(err, core.ErrNotFound) {
				t.Fatalf("resolving twice: %v", err)
			}
			rec, _ := eng.Get(ctx, "note", "x")
			auth, _ := authGet(t, w.svc, "note", "x")
			if canon(t, rec.Data) != canon(t, auth.Data) || !rec.UpdatedAt.Equal(auth.UpdatedAt) {
				t.Fatalf("row %s@%v, authority %s@%v", rec.Data, rec.UpdatedAt, auth.Data, auth.UpdatedAt)
			}
		})
	}
}

// TestConflictE2EResolverFailure: a resolver that fails or panics does not
// abort the sync; its op stays untouched, a SyncError of category resolver
// reports it, and the other ops go on.
func TestConflictE2EResolverFailure(t *testing.T) {
	ctx := context.Background()
	w := newCWorld(t, nil)
	var mu sync.Mutex
	broken := true
	r := core.ResolverFunc(func(_ context.Context, c core.Conflict) (core.Resolution, error) {
		mu.Lock()
		defer mu.Unlock()
		if broken {
			switch c.ID {
			case "err":
				return core.Resolution{}, errBoom
			case "panic":
				panic("resolver bug")
			}
		}
		return core.AcceptServer, nil
	})
	a, aw, _ := w.replica(t, t0, core.Conflicts{Default: r})
	b, _, _ := w.replica(t, t0, core.Conflicts{})
	ids := []string{"err", "panic", "ok"}
	for _, id := range ids {
		_ = a.notes.Put(ctx, id, map[string]any{"v": 0})
	}
	_ = a.notes.Put(ctx, "free", map[string]any{"v": 0})
	mustSync(t, a)
	mustSync(t, b)
	for _, id := range ids {
		_ = b.notes.Put(ctx, id, map[string]any{"v": "b"})
	}
	mustSync(t, b)
	for _, id := range ids {
		_ = a.notes.Put(ctx, id, map[string]any{"v": "a"})
	}
	_ = a.notes.Put(ctx, "free", map[string]any{"v": "a"})
	before := map[string]core.Op{}
	for _, op := range a.ops(t) {
		before[op.ID] = op
	}
	sub := a.eng.Subscribe(1024)
	defer sub.Close()
	aw.reset()
	st, err := a.eng.Sync(ctx)
	if err != nil {
		t.Fatalf("a failing resolver aborted the sync: %v", err)
	}
	checkPushCounts(t, aw)
	if st.Conflicts != 3 || st.Resolved != 1 || st.Pushed != 1 || st.Errors != 2 {
		t.Fatalf("stats %+v", st)
	}
	var errs []core.SyncError
	for _, e := range eventsOf[core.SyncError](drain(sub)) {
		if e.Category != core.CategoryResolver || !e.WillRetry {
			t.Fatalf("SyncError %+v", e)
		}
		errs = append(errs, e)
	}
	if len(errs) != 2 || !slices.ContainsFunc(errs, func(e core.SyncError) bool { return errors.Is(e.Err, errBoom) }) {
		t.Fatalf("resolver errors = %+v", errs)
	}
	if f, _ := authGet(t, w.svc, "note", "free"); field(t, f, "v") != "a" {
		t.Fatal("an unrelated op did not go on")
	}
	ops := a.ops(t)
	if len(ops) != 2 {
		t.Fatalf("outbox = %+v", ops)
	}
	for _, op := range ops {
		was := before[op.ID]
		if op.OpID != was.OpID || op.State != core.StatePending || op.Attempts != 0 || op.Force ||
			!bytes.Equal(op.Payload, was.Payload) || !op.BaseUpdatedAt.Equal(was.BaseUpdatedAt) || !bytes.Equal(op.BasePayload, was.BasePayload) {
			t.Fatalf("op of %s changed: %+v, was %+v", op.ID, op, was)
		}
		if l, _ := localData(t, a, "note", op.ID); field(t, l, "v") != "a" {
			t.Fatalf("the row of %s lost its edit", op.ID)
		}
	}
	// Fixed, the resolver settles them at the next sync.
	mu.Lock()
	broken = false
	mu.Unlock()
	if st := mustSync(t, a); st.Conflicts != 2 || st.Resolved != 2 || len(a.ops(t)) != 0 {
		t.Fatalf("after the fix: %+v, outbox %+v", st, a.ops(t))
	}
	for _, id := range ids {
		if l, _ := localData(t, a, "note", id); field(t, l, "v") != "b" {
			t.Fatalf("%s = %s", id, l.Data)
		}
	}
}

// noGetter hides the authority's Getter.
type noGetter struct{ inner core.Transport }

func (n noGetter) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	return n.inner.Pull(ctx, req)
}

func (n noGetter) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	return n.inner.Push(ctx, ops)
}

// TestConflictE2EDeadLetters: Retry gives a dead op a new budget; Drop
// restores the row to the authority's version, through the Getter or, without
// one, from the op's base, and never leaves it silently diverged.
func TestConflictE2EDeadLetters(t *testing.T) {
	ctx := context.Background()
	for _, getter := range []bool{true, false} {
		t.Run(fmt.Sprintf("getter=%v", getter), func(t *testing.T) {
			w := newCWorld(t, nil)
			wr := &wire{inner: w.svc}
			var tr core.Transport = wr
			if !getter {
				tr = noGetter{wr}
			}
			a := newReplica(t, tr, &core.Options{Clock: core.NewManualClock(t0)})
			b, _, _ := w.replica(t, t0, core.Conflicts{})
			_ = a.notes.Put(ctx, "x", map[string]any{"v": 1, "w": 1})
			mustSync(t, a)
			mustSync(t, b)
			base, _ := authGet(t, w.svc, "note", "x")
			wr.set(rejectIDs(true, "x"))
			_ = a.notes.Put(ctx, "x", map[string]any{"v": 2, "w": 1}, core.Changed("v"))
			_, _ = a.eng.Sync(ctx)
			dl, err := a.eng.DeadLetters(ctx)
			if err != nil || len(dl) != 1 || dl[0].ID != "x" || dl[0].State != core.StateDead {
				t.Fatalf("dead letters = %+v, %v", dl, err)
			}
			if other, _ := a.eng.DeadLetters(ctx, "todo"); len(other) != 0 {
				t.Fatalf("dead letters of todo = %+v", other)
			}
			// Retry: pending again with a fresh budget, pushed at the next sync.
			if err := a.eng.Retry(ctx, dl[0].OpID); err != nil {
				t.Fatal(err)
			}
			if op := opOf(t, a, "x"); op.State != core.StatePending || op.Attempts != 0 {
				t.Fatalf("after Retry: %+v", op)
			}
			if err := a.eng.Retry(ctx, dl[0].OpID); !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("Retry of a pending op: %v", err)
			}
			wr.reset()
			_, _ = a.eng.Sync(ctx)
			if len(wr.pushes) != 1 {
				t.Fatalf("the retried op was pushed %d times", len(wr.pushes))
			}
			dl, _ = a.eng.DeadLetters(ctx)
			if len(dl) != 1 {
				t.Fatalf("dead again: %+v", dl)
			}
			// Meanwhile B changes the record, and A pulls past it (the row,
			// which has a dead op, is kept).
			_ = b.notes.Put(ctx, "x", map[string]any{"v": 1, "w": 2}, core.Changed("w"))
			mustSync(t, b)
			if st := mustSync(t, a, core.PushKinds()); st.Kept != 1 {
				t.Fatalf("kept = %d", st.Kept)
			}
			wr.set(nil)
			if err := a.eng.Drop(ctx, dl[0].OpID); err != nil {
				t.Fatal(err)
			}
			if err := a.eng.Drop(ctx, dl[0].OpID); !errors.Is(err, core.ErrNotFound) {
				t.Fatalf("Drop twice: %v", err)
			}
			if len(a.ops(t)) != 0 {
				t.Fatalf("outbox = %+v", a.ops(t))
			}
			auth, _ := authGet(t, w.svc, "note", "x")
			row, _ := localData(t, a, "note", "x")
			if getter {
				if canon(t, row.Data) != canon(t, auth.Data) || !row.UpdatedAt.Equal(auth.UpdatedAt) {
					t.Fatalf("after Drop the row = %s@%v, authority %s@%v", row.Data, row.UpdatedAt, auth.Data, auth.UpdatedAt)
				}
			} else if canon(t, row.Data) != canon(t, base.Data) || !row.UpdatedAt.Equal(base.UpdatedAt) {
				t.Fatalf("after Drop without a Getter the row = %s@%v, base %s@%v", row.Data, row.UpdatedAt, base.Data, base.UpdatedAt)
			}
			// Either way the row is not left diverged: the next sync ends at
			// the authority's version.
			mustSync(t, a)
			row, _ = localData(t, a, "note", "x")
			if canon(t, row.Data) != canon(t, auth.Data) || !row.UpdatedAt.Equal(auth.UpdatedAt) {
				t.Fatalf("after Drop and a sync the row = %s@%v, authority %s@%v", row.Data, row.UpdatedAt, auth.Data, auth.UpdatedAt)
			}
		})
	}
}

// TestConflictE2EEditDuringPush: the user edits a record while its op is out
// (sent, not answered). The op meets B's change and is merged; the new edit,
// queued behind it, is then rebased onto the merged answer — merged into it,
// not pushed over it, so B's change survives. With changed fields unknown
// too (a document Put without Changed).
func TestConflictE2EEditDuringPush(t *testing.T) {
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("changed known=%v", known), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			var opts []core.UpdateOption
			if known {
				opts = append(opts, core.Changed("title"))
			}
			w := newCWorld(t, nil)
			a, aw, _ := w.replica(t, t0, core.Conflicts{})
			b, _, _ := w.replica(t, t0, core.Conflicts{})
			_ = a.notes.Put(ctx, "x", map[string]any{"n": 1, "title": "base"})
			mustSync(t, a)
			mustSync(t, b)
			_ = b.notes.Put(ctx, "x", map[string]any{"n": 2, "title": "base"}, core.Changed("n"))
			mustSync(t, b)
			_ = a.notes.Put(ctx, "x", map[string]any{"n": 1, "title": "A1"}, opts...)
			calls := 0
			aw.set(func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
				if calls++; calls == 1 { // the op is out: the user edits again
					if err := a.notes.Put(ctx, "x", map[string]any{"n": 1, "title": "A2"}, opts...); err != nil {
						return nil, err
					}
					if n := len(a.ops(t)); n != 2 {
						return nil, fmt.Errorf("the edit coalesced into an op already sent: %d ops", n)
					}
				}
				return inner.Push(ctx, ops)
			})
			st := mustSync(t, a)
			checkPushCounts(t, aw)
			rec, _ := authGet(t, w.svc, "note", "x")
			if want := `{"n":2,"title":"A2"}`; canon(t, rec.Data) != canon(t, want) {
				t.Fatalf("authority = %s, want %s (stats %+v)", rec.Data, want, st)
			}
			if l, _ := localData(t, a, "note", "x"); canon(t, l.Data) != canon(t, rec.Data) || !l.UpdatedAt.Equal(rec.UpdatedAt) || len(a.ops(t)) != 0 {
				t.Fatalf("A's row %s@%v, authority %s@%v, outbox %+v", l.Data, l.UpdatedAt, rec.Data, rec.UpdatedAt, a.ops(t))
			}
		})
	}
}
