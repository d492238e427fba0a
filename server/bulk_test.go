package server_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
	"github.com/uptrace/bun"
)

// gadget is a typed kind: a record it cannot hold is refused by the store.
type gadget struct {
	bun.BaseModel `bun:"table:gadgets"`
	ID            string `bun:"id,pk" json:"id"`
	Name          string `json:"name"`
	N             int    `json:"n"`
	core.SyncColumns
}

var equivKinds = []string{"note", "task", "gadget"}

// txCounts counts the row reads of the transactions of a countingStore.
type txCounts struct{ get, getMany, putMany int }

// countingStore hands out its store's transactions wrapped: with batch
// false the wrapper does not implement core.BatchTx, so a Service over it
// takes the op-by-op path; with batch true it does, and the bulk path runs.
type countingStore struct {
	core.Store
	batch bool
	n     *txCounts
}

type plainTx struct {
	core.Tx
	n *txCounts
}

func (p plainTx) Get(ctx context.Context, kind, id string) (core.Record, error) {
	p.n.get++
	return p.Tx.Get(ctx, kind, id)
}

type batchTx struct {
	plainTx
	core.BatchTx
}

func (b batchTx) GetMany(ctx context.Context, kind string, ids []string) (map[string]core.Record, error) {
	b.n.getMany++
	return b.BatchTx.GetMany(ctx, kind, ids)
}

func (b batchTx) PutMany(ctx context.Context, kind string, recs []core.Record) error {
	b.n.putMany++
	return b.BatchTx.PutMany(ctx, kind, recs)
}

func (c *countingStore) Update(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	return c.Store.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		if !c.batch {
			return fn(ctx, plainTx{tx, c.n})
		}
		bt, ok := tx.(core.BatchTx)
		if !ok {
			return fmt.Errorf("the store's transactions are not core.BatchTx")
		}
		return fn(ctx, batchTx{plainTx{tx, c.n}, bt})
	})
}

var (
	_ core.BatchTx = batchTx{}
	_ core.Tx      = plainTx{}
)

// pushFn pushes a batch as a principal and returns the answers.
type pushFn func(principal string, ops ...core.Op) []core.PushResult

type equivScenario struct {
	name     string
	fallback bool // the bulk attempt must fail and the batch go op by op
	run      func(t *testing.T, push pushFn, want wantFn)
}

// wantFn checks the statuses of a batch's answers.
type wantFn func(res []core.PushResult, want ...core.PushStatus)

// outcome is everything a scenario leaves behind: every answer, every row
// of every kind (tombstones included) and every idempotency record of the
// (principal, op id) pairs pushed.
type outcome struct {
	answers [][]core.PushResult
	rows    map[string][]core.Record
	keys    map[string]*core.IdempotencyRecord
	n       txCounts
}

// taskScope limits tasks to those whose owner is the principal; "nobody"
// may see and create none.
func taskScope(ctx context.Context, p core.Principal, kind string) (*core.Filter, error) {
	switch {
	case kind != "task":
		return nil, nil
	case p.ID == "nobody":
		return &core.Filter{Field: "owner", Values: []string{}}, nil
	}
	return &core.Filter{Field: "owner", Values: []string{p.ID}}, nil
}

// runEquiv runs sc on a fresh authority (frozen clock, so versions are
// last+1µs of their kind) through the bulk path (batch) or op by op.
func runEquiv(t *testing.T, sc equivScenario, batch, broken bool) outcome {
	t.Helper()
	ctx := t.Context()
	st := newStore(t)
	out := outcome{rows: map[string][]core.Record{}, keys: map[string]*core.IdempotencyRecord{}}
	cs := &countingStore{Store: st, batch: batch, n: &out.n}
	svc := newServiceOn(t, cs, &server.Options{
		Tables: []core.Table{core.Documents("note"), core.Documents("task"), core.NewTable[gadget]("gadget")},
		Clock:  core.NewManualClock(t0),
		Scope:  taskScope,
	})
	if broken {
		server.BreakBulkRowUpdates(svc)
	}
	type key struct{ principal, opID string }
	var pushed []key
	w := strictWant(t)
	if broken {
		w = noWant
	}
	sc.run(t, func(principal string, ops ...core.Op) []core.PushResult {
		t.Helper()
		res := push(t, core.WithPrincipal(ctx, core.Principal{ID: principal}), svc, ops...)
		out.answers = append(out.answers, res)
		for _, op := range ops {
			if op.OpID != "" {
				pushed = append(pushed, key{principal, op.OpID})
			}
		}
		return res
	}, w)
	err := st.View(ctx, func(ctx context.Context, tx core.Tx) error {
		for _, kind := range equivKinds {
			rows, err := tx.List(ctx, kind, core.ListOptions{IncludeDeleted: true})
			if err != nil {
				return err
			}
			out.rows[kind] = rows
		}
		for _, k := range pushed {
			r, err := tx.Idempotent(ctx, k.principal, k.opID)
			switch {
			case err == nil:
				out.keys[k.principal+"/"+k.opID] = &r
			case errors.Is(err, core.ErrNotFound):
				out.keys[k.principal+"/"+k.opID] = nil
			default:
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	return out
}

// diffOutcomes describes how two outcomes differ ("" when they do not).
func diffOutcomes(a, b outcome) string {
	if len(a.answers) != len(b.answers) {
		return fmt.Sprintf("%d pushes vs %d", len(a.answers), len(b.answers))
	}
	for i := range a.answers {
		for j := range a.answers[i] {
			if x, y := a.answers[i][j], b.answers[i][j]; !reflect.DeepEqual(x, y) {
				return fmt.Sprintf("push %d, answer %d:\n  %s\nvs\n  %s", i, j, showResult(x), showResult(y))
			}
		}
	}
	for _, kind := range equivKinds {
		if x, y := a.rows[kind], b.rows[kind]; !reflect.DeepEqual(x, y) {
			return fmt.Sprintf("rows of %s:\n  %s\nvs\n  %s", kind, showRecords(x), showRecords(y))
		}
	}
	for k, x := range a.keys {
		if y := b.keys[k]; !reflect.DeepEqual(x, y) {
			return fmt.Sprintf("idempotency record %s:\n  %+v\nvs\n  %+v", k, x, y)
		}
	}
	return ""
}

func showRecord(r *core.Record) string {
	if r == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{%s/%s u=%s d=%s e=%s %s}", r.Kind, r.ID, core.FormatTime(r.UpdatedAt),
		core.FormatTime(r.DeletedAt), core.FormatTime(r.EditedAt), r.Data)
}

func showRecords(rs []core.Record) string {
	s := ""
	for i := range rs {
		s += showRecord(&rs[i]) + " "
	}
	return s
}

func showResult(r core.PushResult) string {
	return fmt.Sprintf("{%s %v perm=%v %q %s}", r.OpID, r.Status, r.Permanent, r.Reason, showRecord(r.Record))
}

// us is the n-th microsecond after v: with the frozen clock, the n-th
// version a kind stamps after v.
func us(v time.Time, n int) time.Time { return v.Add(time.Duration(n) * time.Microsecond) }

func statuses(res []core.PushResult) []core.PushStatus {
	out := make([]core.PushStatus, len(res))
	for i := range res {
		out[i] = res[i].Status
	}
	return out
}

// strictWant fails a scenario whose answers are not the expected ones, so
// that the scenarios exercise what they claim to (both paths could agree on
// something else).
func strictWant(t *testing.T) wantFn {
	return func(res []core.PushResult, want ...core.PushStatus) {
		t.Helper()
		if got := statuses(res); !reflect.DeepEqual(got, want) {
			for _, r := range res {
				t.Logf("  %s", showResult(r))
			}
			t.Fatalf("statuses %v, want %v", got, want)
		}
	}
}

// noWant checks nothing: the broken variant answers otherwise, and the
// comparison of outcomes must see it.
func noWant([]core.PushResult, ...core.PushStatus) {}

const (
	applied  = core.StatusApplied
	conflict = core.StatusConflict
	notFound = core.StatusNotFound
	rejected = core.StatusRejected
	skipped  = core.StatusSkipped
)

var equivScenarios = []equivScenario{
	{name: "fresh creates", run: func(t *testing.T, push pushFn, want wantFn) {
		want(push("alice",
			upsert("c1", "note", "n1", `{"title":"a"}`, time.Time{}),
			upsert("c2", "note", "n2", ` {"title": "spaced"} `, time.Time{}),
			upsert("", "note", "n3", `{"no":"key"}`, time.Time{}),
			upsert("c4", "task", "t1", `{"title":"x"}`, time.Time{}),
			upsert("c5", "gadget", "g1", `{"name":"g","n":3,"extra":true}`, time.Time{}),
		), applied, applied, applied, applied, applied)
	}},
	{name: "updates with right and wrong base", run: func(t *testing.T, push pushFn, want wantFn) {
		res := push("alice",
			upsert("s1", "note", "a", `{"v":1}`, time.Time{}),
			upsert("s2", "note", "b", `{"v":1}`, time.Time{}),
			upsert("s3", "gadget", "g", `{"name":"g"}`, time.Time{}))
		a, b, g := res[0].Record.UpdatedAt, res[1].Record.UpdatedAt, res[2].Record.UpdatedAt
		want(push("alice",
			upsert("u1", "note", "a", `{"v":2}`, a),
			upsert("u2", "note", "b", `{"v":2}`, us(b, 7)),
			upsert("u3", "note", "b", `{"v":3}`, b), // after a conflict: skipped
			upsert("u4", "note", "missing", `{"v":2}`, a),
			upsert("u5", "note", "a2", `{"v":1}`, a), // create with a base: not found
			upsert("u6", "gadget", "g", `{"name":"h","n":2}`, g),
			upsert("u7", "note", "b2", `{}`, time.Time{}),
		), applied, conflict, skipped, notFound, notFound, applied, applied)
		forced := upsert("u8", "note", "b", `{"v":9}`, time.Time{})
		forced.Force = true
		want(push("alice", forced, upsert("u9", "note", "a", `{"v":3}`, a)), applied, conflict)
	}},
	{name: "deletes of live rows, tombstones and missing rows", run: func(t *testing.T, push pushFn, want wantFn) {
		res := push("alice",
			upsert("s1", "note", "live", `{"v":1}`, time.Time{}),
			upsert("s2", "note", "live2", `{"v":1}`, time.Time{}),
			upsert("s3", "note", "tomb", `{"v":1}`, time.Time{}),
			upsert("s4", "gadget", "gl", `{"name":"x"}`, time.Time{}))
		live, tomb, gl := res[0].Record.UpdatedAt, res[2].Record.UpdatedAt, res[3].Record.UpdatedAt
		tres := push("alice", del("s5", "note", "tomb", tomb))
		want(tres, applied)
		tv := tres[0].Record.UpdatedAt
		fd := del("d6", "note", "tomb", time.Time{})
		fd.Force = true
		want(push("alice",
			del("d1", "note", "live", live),
			del("d2", "note", "live2", time.Time{}), // no base on a live row: conflict
			del("d3", "note", "tomb", tv),           // a tombstone: applied, no new version
			del("d4", "note", "missing", time.Time{}),
			del("d5", "note", "missing2", tv),
			del("d7", "gadget", "gl", gl),
			upsert("d8", "note", "tomb", `{"v":2}`, time.Time{}), // create over a tombstone: conflict
		), applied, conflict, applied, notFound, notFound, applied, conflict)
		want(push("alice", fd), applied)
	}},
	{name: "two ops on one record: applied then applied", run: func(t *testing.T, push pushFn, want wantFn) {
		res := push("alice",
			upsert("s1", "note", "x", `{"v":1}`, time.Time{}),
			upsert("s2", "gadget", "g", `{"name":"a"}`, time.Time{}))
		x, g := res[0].Record.UpdatedAt, res[1].Record.UpdatedAt
		// With the clock frozen, the next versions of a kind are x+1µs, x+2µs...
		want(push("alice",
			upsert("a1", "note", "x", `{"v":2}`, x),                            // x+1
			upsert("a2", "note", "x", `{"v":3}`, us(x, 1)),                     // x+2
			upsert("a3", "note", "y", ` {"v":1} `, time.Time{}),                // x+3
			del("a4", "note", "y", us(x, 3)),                                   // x+4, keeps y's data
			del("a5", "note", "y", us(x, 4)),                                   // a tombstone: applied, no write
			upsert("a6", "note", "y", `{"v":2}`, us(x, 4)),                     // re-create: x+5
			upsert("a7", "gadget", "h", `{"name":"h","extra":1}`, time.Time{}), // g+1
			del("a8", "gadget", "h", us(g, 1)),                                 // tombstone holds the model's fields
			upsert("a9", "gadget", "g", `{"name":"b"}`, g),                     // g+3
			upsert("a10", "gadget", "g", `{"name":"c","n":1}`, us(g, 3)),
		), applied, applied, applied, applied, applied, applied, applied, applied, applied, applied)
	}},
	{name: "two ops on one record: applied then skipped after a failure", run: func(t *testing.T, push pushFn, want wantFn) {
		res := push("alice",
			upsert("s1", "note", "x", `{"v":1}`, time.Time{}),
			upsert("s2", "gadget", "g", `{"name":"a","extra":"dropped"}`, time.Time{}))
		x, g := res[0].Record.UpdatedAt, res[1].Record.UpdatedAt
		want(push("alice",
			upsert("f1", "note", "x", `{"v":2}`, x),
			upsert("f2", "note", "x", `{"v":3}`, x), // stale base: conflict carrying f1's row
			upsert("f3", "note", "x", `{"v":4}`, us(x, 1)),
			upsert("f4", "note", "n", `{"v":1}`, time.Time{}),
			upsert("f5", "note", "n", `{"v":2}`, time.Time{}), // create over f4's row: conflict
			del("f6", "note", "n", time.Time{}),
			upsert("f7", "gadget", "g", `{"name":"b","extra":1}`, g),
			upsert("f8", "gadget", "g", `{"name":"c"}`, time.Time{}), // conflict carrying f7's row as stored
		), applied, conflict, skipped, applied, conflict, skipped, applied, conflict)
	}},
	{name: "repeated op id in one batch", run: func(t *testing.T, push pushFn, want wantFn) {
		res := push("alice", upsert("s1", "note", "x", `{"v":1}`, time.Time{}))
		x := res[0].Record.UpdatedAt
		op := upsert("r1", "note", "a", `{ "t": "<b> & co" }`, time.Time{})
		same := op
		same.Payload = []byte(`{"t":"<b> & co"}`)
		want(push("alice",
			op,
			same, // a replay of r1: its first answer, as stored
			upsert("r1", "note", "a", `{"t":"other"}`, time.Time{}), // the key reused: rejected
			upsert("r3", "note", "x", `{"v":2}`, us(x, 5)),          // conflict: r3 not recorded
			upsert("r3", "note", "y", `{"v":2}`, time.Time{}),       // another request under r3: decided afresh
			upsert("r3", "note", "y", `{"v":2}`, time.Time{}),       // now a replay
		), applied, applied, rejected, conflict, applied, applied)
	}},
	{name: "replays across batches", run: func(t *testing.T, push pushFn, want wantFn) {
		first := []core.Op{
			upsert("k1", "note", "a", `{"v":1}`, time.Time{}),
			upsert("k2", "task", "t", `{"v":1}`, time.Time{}),
			upsert("k3", "gadget", "g", `{"name":"g","extra":2}`, time.Time{}),
		}
		res := push("alice", first...)
		want(res, applied, applied, applied)
		a := res[0].Record.UpdatedAt
		del1 := del("k4", "note", "a", a)
		want(push("alice", del1), applied)
		want(push("alice",
			first[0], first[1], first[2], del1, // replays: the first answers
			upsert("k5", "note", "a", `{"v":5}`, us(a, 1)), // re-create on the tombstone
			upsert("k1", "note", "a", `{"v":2}`, a),        // other request: rejected
			del("k2", "task", "t", time.Time{}),
		), applied, applied, applied, applied, applied, rejected, rejected)
		// Keys are per principal.
		want(push("bob", upsert("k1", "note", "b", `{}`, time.Time{})), applied)
	}},
	{name: "scope", run: func(t *testing.T, push pushFn, want wantFn) {
		want(push("bob", upsert("p1", "task", "tb", `{"owner":"bob","v":1}`, time.Time{})), applied)
		res := push("alice", upsert("p2", "task", "ta", `{"owner":"bob","v":1}`, time.Time{})) // owner forced to alice
		want(res, applied)
		ta := res[0].Record.UpdatedAt
		want(push("alice",
			upsert("p3", "task", "tb", `{"v":2}`, time.Time{}),             // out of scope: not found
			del("p4", "task", "tb", time.Time{}),                           // skipped after p3
			upsert("p5", "task", "tc", `{"owner":"mallory"}`, time.Time{}), // forced to alice
			upsert("p6", "task", "ta", `{"v":2}`, ta),                      // owner kept from the row
			upsert("p7", "task", "ta", `{"v":3,"owner":"bob"}`, us(ta, 2)), // owner kept from p6's row
			upsert("p8", "note", "n", `{"owner":"anyone"}`, time.Time{}),   // notes are not scoped
		), notFound, skipped, applied, applied, applied, applied)
		want(push("alice", del("p4", "task", "tb", time.Time{})), notFound)
		want(push("nobody",
			upsert("p9", "task", "td", `{}`, time.Time{}), // no scope to create in
			upsert("p10", "note", "n2", `{}`, time.Time{}),
		), rejected, applied)
	}},
	{name: "a record the typed model cannot hold, amid good ops", fallback: true, run: func(t *testing.T, push pushFn, want wantFn) {
		res := push("alice", upsert("s1", "note", "x", `{"v":1}`, time.Time{}))
		x := res[0].Record.UpdatedAt
		want(push("alice",
			upsert("b1", "gadget", "g1", `{"name":"ok"}`, time.Time{}),
			upsert("b2", "gadget", "g2", `{"name":"bad","n":"not a number"}`, time.Time{}),
			upsert("b3", "gadget", "g2", `{"name":"fixed"}`, time.Time{}), // after the rejection: skipped
			upsert("b4", "note", "x", `{"v":2}`, x),
			upsert("b5", "gadget", "g3", `{"name":"ok too","n":2}`, time.Time{}),
			upsert("b1", "gadget", "g1", `{"name":"ok"}`, time.Time{}), // replay within the batch
		), applied, rejected, skipped, applied, applied, applied)
	}},
	{name: "unknown kind in a batch", run: func(t *testing.T, push pushFn, want wantFn) {
		want(push("alice",
			upsert("x1", "nope", "a", `{}`, time.Time{}),
			upsert("x2", "note", "a", `{}`, time.Time{}),
			upsert("x3", "nope", "a", `{}`, time.Time{}),
			upsert("x4", "note", "b", `[1]`, time.Time{}), // bad payload: rejected by plan
			upsert("x5", "note", "b", `{}`, time.Time{}),  // same record: skipped
		), rejected, applied, skipped, rejected, skipped)
	}},
	{name: "many ops over several kinds", run: func(t *testing.T, push pushFn, want wantFn) {
		var ops []core.Op
		var st []core.PushStatus
		for i := range 60 {
			kind := equivKinds[i%len(equivKinds)]
			ops = append(ops, upsert(fmt.Sprintf("m%d", i), kind, fmt.Sprintf("r%d", i%25), fmt.Sprintf(`{"name":"n%d"}`, i), time.Time{}))
		}
		res := push("alice", ops...)
		var next []core.Op
		for i, r := range res {
			if r.Status == applied {
				next = append(next, upsert(fmt.Sprintf("m2-%d", i), r.Record.Kind, r.Record.ID, `{"name":"again"}`, r.Record.UpdatedAt))
				st = append(st, applied)
			}
		}
		want(push("alice", next...), st...)
	}},
}

// The bulk path answers every batch and leaves every row and idempotency
// record exactly as the op-by-op path does.
func TestBulkPushMatchesOpByOp(t *testing.T) {
	for _, sc := range equivScenarios {
		t.Run(sc.name, func(t *testing.T) {
			perOp := runEquiv(t, sc, false, false)
			bulk := runEquiv(t, sc, true, false)
			if d := diffOutcomes(perOp, bulk); d != "" {
				t.Fatalf("op by op vs bulk differ: %s", d)
			}
			if perOp.n.getMany != 0 || perOp.n.get == 0 {
				t.Fatalf("the op-by-op run read %d rows one by one and %d in bulk", perOp.n.get, perOp.n.getMany)
			}
			switch {
			case bulk.n.getMany == 0 || bulk.n.putMany == 0:
				t.Fatalf("the bulk run made %d GetMany and %d PutMany calls", bulk.n.getMany, bulk.n.putMany)
			case sc.fallback && bulk.n.get == 0:
				t.Fatal("the bulk run did not fall back to op by op")
			case !sc.fallback && bulk.n.get != 0:
				t.Fatalf("the bulk run read %d rows one by one (a fallback?)", bulk.n.get)
			}
		})
	}
}

// The negative control: a bulk path whose later ops of a record do not see
// what earlier ops of the batch wrote must be caught by the comparison.
func TestBulkPushNegativeControl_StaleRowsAreCaught(t *testing.T) {
	for _, sc := range equivScenarios {
		if !strings.HasPrefix(sc.name, "two ops on one record") {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			perOp := runEquiv(t, sc, false, false)
			broken := runEquiv(t, sc, true, true)
			d := diffOutcomes(perOp, broken)
			if d == "" {
				t.Fatal("the broken bulk path went unnoticed")
			}
			t.Logf("caught: %s", d)
		})
	}
}
