package core_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
	"pgregory.net/rapid"
)

// The convergence property of DESIGN §9 under autoPreserve: replicas make
// overlapping edits of scalar fields and of a "tags" list, deletes and
// re-creates, and sync in random orders. Afterwards (everyone synced until
// quiet) every replica equals the authority, and the authority's log of
// applied ops shows no lost update:
//
//   - every field an applied op wrote (changed relative to the record it
//     replaced), and every tag it added or removed, is in the final record,
//     unless a later applied op wrote it too on purpose (a field or tag its
//     user changed, a delete, or a re-create of a deleted record);
//   - no applied op that merged into a live record wrote a field, or added
//     or removed a tag, its user did not change.
//
// The authority logs each op it applies, with its payload, the record it
// replaces and what the pushing replica's user changed, in the write's own
// transaction (Options.Validate writing through the joined store
// transaction), so the log holds exactly the applied ops.

var (
	propDocs = core.Documents("doc")
	propLog  = core.Documents("oplog")
)

// asPrincipal names the replica to the authority.
type asPrincipal struct {
	inner *server.Service
	p     core.Principal
}

func (a asPrincipal) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	return a.inner.Pull(core.WithPrincipal(ctx, a.p), req)
}

func (a asPrincipal) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	return a.inner.Push(core.WithPrincipal(ctx, a.p), ops)
}

func (a asPrincipal) Get(ctx context.Context, kind, id string) (core.Record, error) {
	return a.inner.Get(core.WithPrincipal(ctx, a.p), kind, id)
}

// intent is what a replica's user changed on a record since its outbox last
// held no op for it.
type intent struct {
	All    bool            `json:"all"` // a create: every field
	Fields map[string]bool `json:"fields"`
	Tags   map[string]bool `json:"tags"`
}

type logEntry struct {
	P       string         `json:"p"`
	ID      string         `json:"id"`
	Type    core.OpType    `json:"type"`
	Payload map[string]any `json:"payload"`
	Cur     map[string]any `json:"cur"`
	CurLive bool           `json:"curLive"`
	Intent  intent         `json:"intent"`
}

type propWorld struct {
	svc  *server.Service
	auth *sqlite.Store
	reps []*core.Engine
	docs []*core.DocWriter

	mu      sync.Mutex
	intents map[string]map[string]*intent // replica → record id → intent
	seq     atomic.Int64
	logSeen string
}

func newPropWorld(t *testing.T, replicas int) *propWorld {
	ctx := context.Background()
	pw := &propWorld{intents: map[string]map[string]*intent{}}
	auth, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "authority.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	pw.auth = auth
	pw.svc, err = server.New(ctx, auth, &server.Options{
		Tables: []core.Table{propDocs, propLog},
		Clock:  core.NewManualClock(t0),
		Validate: func(ctx context.Context, p core.Principal, op core.Op, cur *core.Record) error {
			if op.Kind != "doc" {
				return nil
			}
			e := logEntry{P: p.ID, ID: op.ID, Type: op.Type, CurLive: cur != nil && !cur.Deleted()}
			pw.mu.Lock()
			if in := pw.intents[p.ID][op.ID]; in != nil {
				e.Intent = *in
			}
			pw.mu.Unlock()
			if op.Type == core.OpUpsert {
				if err := json.Unmarshal(op.Payload, &e.Payload); err != nil {
					return err
				}
			}
			if cur != nil {
				if err := json.Unmarshal(cur.Data, &e.Cur); err != nil {
					return err
				}
			}
			data, err := json.Marshal(e)
			if err != nil {
				return err
			}
			id := fmt.Sprintf("%010d", pw.seq.Add(1))
			return auth.Update(ctx, func(ctx context.Context, tx core.Tx) error {
				return tx.Put(ctx, core.Record{Kind: "oplog", ID: id, UpdatedAt: t0, Data: data})
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pw.svc.Close() })
	for i := range replicas {
		name := fmt.Sprintf("r%d", i)
		st := openStore(t, name+".db")
		eng, err := core.NewEngine(ctx, st, asPrincipal{pw.svc, core.Principal{ID: name}},
			&core.Options{Tables: []core.Table{propDocs}, Clock: core.NewManualClock(t0)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
		pw.reps = append(pw.reps, eng)
		pw.docs = append(pw.docs, core.DocsFor(eng, propDocs))
		pw.intents[name] = map[string]*intent{}
	}
	return pw
}

func (pw *propWorld) intentOf(r int, id string) *intent {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	m := pw.intents[fmt.Sprintf("r%d", r)]
	if m[id] == nil {
		m[id] = &intent{Fields: map[string]bool{}, Tags: map[string]bool{}}
	}
	return m[id]
}

// settleIntents forgets the intents of records replica r has no op for.
func (pw *propWorld) settleIntents(rt *rapid.T, r int) {
	var ops []core.Op
	err := pw.reps[r].Store().View(context.Background(), func(ctx context.Context, tx core.Tx) error {
		var err error
		ops, err = tx.Ops(ctx, core.OpFilter{})
		return err
	})
	if err != nil {
		rt.Fatal(err)
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	m := pw.intents[fmt.Sprintf("r%d", r)]
	for id := range m {
		if !slices.ContainsFunc(ops, func(op core.Op) bool { return op.ID == id }) {
			delete(m, id)
		}
	}
}

// live returns replica r's row of id when it is live there.
func (pw *propWorld) live(rt *rapid.T, r int, id string) (map[string]any, bool) {
	ctx := context.Background()
	rec, err := pw.reps[r].Get(ctx, "doc", id)
	if err != nil || rec.Deleted() {
		return nil, false
	}
	var deleting bool
	err = pw.reps[r].Store().View(ctx, func(ctx context.Context, tx core.Tx) error {
		ops, err := tx.Ops(ctx, core.OpFilter{Kind: "doc", ID: id})
		deleting = len(ops) > 0 && ops[len(ops)-1].Type == core.OpDelete
		return err
	})
	if err != nil {
		rt.Fatal(err)
	}
	if deleting {
		return nil, false
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Data, &m); err != nil {
		rt.Fatal(err)
	}
	return m, true
}

func (pw *propWorld) sync(rt *rapid.T, r int) core.Stats {
	st, err := pw.reps[r].Sync(context.Background())
	if err != nil {
		rt.Fatalf("sync of r%d: %v", r, err)
	}
	if st.Errors != 0 || st.Stuck != 0 {
		rt.Fatalf("sync of r%d: %+v", r, st)
	}
	pw.settleIntents(rt, r)
	return st
}

// log returns the applied ops logged since the last call.
func (pw *propWorld) log(rt *rapid.T) []logEntry {
	var recs []core.Record
	err := pw.auth.View(context.Background(), func(ctx context.Context, tx core.Tx) error {
		var err error
		recs, err = tx.List(ctx, "oplog", core.ListOptions{AfterID: pw.logSeen})
		return err
	})
	if err != nil {
		rt.Fatal(err)
	}
	out := make([]logEntry, len(recs))
	for i, rec := range recs {
		if err := json.Unmarshal(rec.Data, &out[i]); err != nil {
			rt.Fatal(err)
		}
		pw.logSeen = rec.ID
	}
	return out
}

func jsonEq(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func tagsOf(m map[string]any) map[string]bool {
	out := map[string]bool{}
	l, _ := m["tags"].([]any)
	for _, v := range l {
		out[fmt.Sprint(v)] = true
	}
	return out
}

// written returns the fields e changed relative to the record it replaced
// (all of them for a re-create), and the tags it added or removed.
func written(e logEntry) (map[string]bool, map[string]bool) {
	cur := e.Cur
	if !e.CurLive {
		cur = map[string]any{}
	}
	fields := map[string]bool{}
	for f, v := range e.Payload {
		if w, ok := cur[f]; !ok || !jsonEq(v, w) {
			fields[f] = true
		}
	}
	for f := range cur {
		if _, ok := e.Payload[f]; !ok {
			fields[f] = true
		}
	}
	tags := map[string]bool{}
	before, after := tagsOf(cur), tagsOf(e.Payload)
	for tg := range after {
		if !before[tg] {
			tags[tg] = true
		}
	}
	for tg := range before {
		if !after[tg] {
			tags[tg] = true
		}
	}
	return fields, tags
}

// checkLog checks the no-lost-update property of one record's applied ops
// against its final version at the authority (nil when missing).
func checkLog(entries []logEntry, final *core.Record) error {
	var fin map[string]any
	finalLive := final != nil && !final.Deleted()
	if finalLive {
		if err := json.Unmarshal(final.Data, &fin); err != nil {
			return err
		}
	}
	// wipes reports whether an op after i replaced the whole record.
	wipes := func(j int) bool { return entries[j].Type == core.OpDelete || !entries[j].CurLive }
	for i, e := range entries {
		if e.Type == core.OpDelete {
			continue
		}
		fields, tags := written(e)
		if e.CurLive && !e.Intent.All {
			for f := range fields {
				if !e.Intent.Fields[f] {
					return fmt.Errorf("op %d by %s wrote %q, which its user did not change (intent %v): %v over %v",
						i, e.P, f, e.Intent.Fields, e.Payload, e.Cur)
				}
			}
			for tg := range tags {
				if !e.Intent.Tags[tg] {
					return fmt.Errorf("op %d by %s added or removed tag %q, which its user did not touch (intent %v): %v over %v",
						i, e.P, tg, e.Intent.Tags, e.Payload, e.Cur)
				}
			}
		}
		overwritten := func(f, tg string) bool {
			for j := i + 1; j < len(entries); j++ {
				if wipes(j) {
					return true
				}
				fj, tj := written(entries[j])
				in := entries[j].Intent
				if f != "" && fj[f] && (in.All || in.Fields[f]) {
					return true
				}
				if tg != "" && tj[tg] && (in.All || in.Tags[tg]) {
					return true
				}
			}
			return false
		}
		if !finalLive {
			if !overwritten("\x00", "\x00") {
				return fmt.Errorf("op %d by %s: the record ends deleted but no later op deleted it", i, e.P)
			}
			continue
		}
		for f := range fields {
			if !jsonEq(fin[f], e.Payload[f]) && !overwritten(f, "") {
				return fmt.Errorf("op %d by %s wrote %s=%v; the final record has %v and no later op changed it on purpose",
					i, e.P, f, e.Payload[f], fin[f])
			}
		}
		finTags, opTags := tagsOf(fin), tagsOf(e.Payload)
		for tg := range tags {
			if finTags[tg] != opTags[tg] && !overwritten("", tg) {
				return fmt.Errorf("op %d by %s left tag %q present=%v; the final record disagrees and no later op touched it on purpose",
					i, e.P, tg, opTags[tg])
			}
		}
	}
	return nil
}

func TestConvergenceProperty(t *testing.T) {
	if f := flag.Lookup("rapid.checks"); f != nil && !isFlagSet("rapid.checks") {
		// A fixed count keeps the test to a few seconds; -rapid.checks=N
		// runs more.
		old := f.Value.String()
		n := "40"
		if raceEnabled {
			n = "5" // the normal pass runs all 40
		}
		_ = f.Value.Set(n)
		defer f.Value.Set(old)
	}
	ctx := context.Background()
	const replicas = 4
	pw := newPropWorld(t, replicas)
	var cases, applied, merges atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		n := cases.Add(1)
		ids := []string{fmt.Sprintf("c%d-a", n), fmt.Sprintf("c%d-b", n), fmt.Sprintf("c%d-c", n)}
		active := rapid.IntRange(3, replicas).Draw(rt, "replicas")
		titles := []string{"t1", "t2", "t3"}
		tagPool := []string{"red", "green", "blue", "work"}
		steps := rapid.IntRange(1, 24).Draw(rt, "steps")
		for range steps {
			r := rapid.IntRange(0, active-1).Draw(rt, "replica")
			id := rapid.SampledFrom(ids).Draw(rt, "id")
			act := rapid.SampledFrom([]string{"title", "n", "tag", "tag", "delete", "sync", "sync", "sync"}).Draw(rt, "action")
			if act == "sync" {
				pw.sync(rt, r)
				continue
			}
			doc, live := pw.live(rt, r, id)
			in := pw.intentOf(r, id)
			var err error
			switch {
			case !live && act != "delete":
				// A create (or a re-create of a deleted record): every field.
				tags := []any{}
				for _, tg := range tagPool {
					if rapid.Bool().Draw(rt, "has "+tg) {
						tags = append(tags, tg)
					}
				}
				doc = map[string]any{"title": rapid.SampledFrom(titles).Draw(rt, "title"),
					"n": rapid.IntRange(0, 9).Draw(rt, "n"), "tags": tags}
				pw.mu.Lock()
				in.All = true
				pw.mu.Unlock()
				err = pw.docs[r].Put(ctx, id, doc)
			case !live:
				continue
			case act == "delete":
				pw.mu.Lock()
				in.All = true
				pw.mu.Unlock()
				err = pw.docs[r].Delete(ctx, id)
			case act == "title" || act == "n":
				if act == "title" {
					doc["title"] = rapid.SampledFrom(titles).Draw(rt, "title")
				} else {
					doc["n"] = rapid.IntRange(0, 9).Draw(rt, "n")
				}
				pw.mu.Lock()
				in.Fields[act] = true
				pw.mu.Unlock()
				err = pw.docs[r].Put(ctx, id, doc, core.Changed(act))
			default: // add or remove a tag
				tg := rapid.SampledFrom(tagPool).Draw(rt, "tag")
				tags, _ := doc["tags"].([]any)
				if i := slices.IndexFunc(tags, func(v any) bool { return v == tg }); i >= 0 {
					tags = slices.Delete(slices.Clone(tags), i, i+1)
				} else {
					tags = append(slices.Clone(tags), tg)
				}
				doc["tags"] = tags
				pw.mu.Lock()
				in.Fields["tags"] = true
				in.Tags[tg] = true
				pw.mu.Unlock()
				err = pw.docs[r].Put(ctx, id, doc, core.Changed("tags"))
			}
			if err != nil {
				rt.Fatalf("r%d %s %s: %v", r, act, id, err)
			}
		}
		// Sync everyone until a whole round pushes nothing: then every
		// replica has pulled the authority's last state.
		quiet := false
		for round := 0; round < 6 && !quiet; round++ {
			quiet = true
			for r := range replicas {
				st := pw.sync(rt, r)
				merges.Add(int64(st.Resolved))
				if st.Pushed != 0 || st.Conflicts != 0 {
					quiet = false
				}
			}
		}
		if !quiet {
			rt.Fatal("the replicas did not quiet down in 6 rounds")
		}
		logged := map[string][]logEntry{}
		for _, e := range pw.log(rt) {
			logged[e.ID] = append(logged[e.ID], e)
			applied.Add(1)
		}
		for _, id := range ids {
			var final *core.Record
			if rec, err := pw.svc.Get(ctx, "doc", id); err == nil {
				final = &rec
			}
			for r := range replicas {
				rec, err := pw.reps[r].Get(ctx, "doc", id)
				switch {
				case final == nil && err == nil:
					rt.Fatalf("r%d has %s, the authority does not", r, id)
				case final == nil:
					continue
				case err != nil:
					rt.Fatalf("r%d lacks %s: %v", r, id, err)
				}
				if rec.Deleted() != final.Deleted() || !rec.UpdatedAt.Equal(final.UpdatedAt) || !jsonEqRaw(rec.Data, final.Data) {
					rt.Fatalf("r%d's %s = %s@%v deleted=%v; authority %s@%v deleted=%v", r, id,
						rec.Data, rec.UpdatedAt, rec.Deleted(), final.Data, final.UpdatedAt, final.Deleted())
				}
			}
			if err := checkLog(logged[id], final); err != nil {
				rt.Fatalf("%s: %v", id, err)
			}
		}
	})
	t.Logf("%d cases, %d applied ops checked, %d conflicts resolved while settling", cases.Load(), applied.Load(), merges.Load())
}

func jsonEqRaw(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return jsonEq(x, y)
}

func isFlagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

// TestConvergenceCheckCatchesLostUpdates is the negative control of the
// property's log check: a forced whole-record write over another user's
// change (what a clientWins-style resolution does) is reported.
func TestConvergenceCheckCatchesLostUpdates(t *testing.T) {
	base := map[string]any{"title": "t1", "n": 1.0, "tags": []any{"red"}}
	b := map[string]any{"title": "t1", "n": 2.0, "tags": []any{"red", "blue"}}
	a := map[string]any{"title": "t2", "n": 1.0, "tags": []any{"red"}}
	entries := []logEntry{
		{P: "r0", ID: "x", Type: core.OpUpsert, Payload: base, Intent: intent{All: true}},
		{P: "r1", ID: "x", Type: core.OpUpsert, Payload: b, Cur: base, CurLive: true,
			Intent: intent{Fields: map[string]bool{"n": true, "tags": true}, Tags: map[string]bool{"blue": true}}},
		{P: "r2", ID: "x", Type: core.OpUpsert, Payload: a, Cur: b, CurLive: true,
			Intent: intent{Fields: map[string]bool{"title": true}, Tags: map[string]bool{}}},
	}
	final := core.Record{Kind: "doc", ID: "x", UpdatedAt: t0, Data: mustMarshal(t, a)}
	if err := checkLog(entries, &final); err == nil {
		t.Fatal("the check missed a lost update")
	}
	// The merged write instead passes.
	merged := map[string]any{"title": "t2", "n": 2.0, "tags": []any{"red", "blue"}}
	entries[2].Payload = merged
	final.Data = mustMarshal(t, merged)
	if err := checkLog(entries, &final); err != nil {
		t.Fatal(err)
	}
}

func mustMarshal(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
