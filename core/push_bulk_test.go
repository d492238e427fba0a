package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

// wrapStore gives the engine the transactions of a real store through wrap,
// so a test decides which optional interfaces the engine sees.
type wrapStore struct {
	core.Store
	wrap   func(core.Tx) core.Tx
	before *oneShot // runs once before the next Update, when armed
}

// oneShot holds a function to run once.
type oneShot struct {
	mu sync.Mutex
	fn func()
}

func (o *oneShot) arm(fn func()) {
	o.mu.Lock()
	o.fn = fn
	o.mu.Unlock()
}

func (o *oneShot) fire() {
	o.mu.Lock()
	fn := o.fn
	o.fn = nil
	o.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (s wrapStore) Update(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	if s.before != nil {
		s.before.fire()
	}
	return s.Store.Update(ctx, func(ctx context.Context, tx core.Tx) error { return fn(ctx, s.wrap(tx)) })
}

func (s wrapStore) View(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	return s.Store.View(ctx, func(ctx context.Context, tx core.Tx) error { return fn(ctx, s.wrap(tx)) })
}

// plainTx hides the optional interfaces of the Tx underneath: the engine
// takes the one-op path.
type plainTx struct{ core.Tx }

// batchCalls counts the BatchTx calls made through countingTx, by method.
type batchCalls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *batchCalls) add(method string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[method]++
}

func (c *batchCalls) get(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[method]
}

// countingTx is the store's own Tx, BatchTx included, counting BatchTx calls.
type countingTx struct {
	core.Tx
	bt    core.BatchTx
	calls *batchCalls
}

var _ core.BatchTx = countingTx{}

func (t countingTx) GetMany(ctx context.Context, kind string, ids []string) (map[string]core.Record, error) {
	t.calls.add("GetMany")
	return t.bt.GetMany(ctx, kind, ids)
}

func (t countingTx) PutMany(ctx context.Context, kind string, recs []core.Record) error {
	t.calls.add("PutMany")
	return t.bt.PutMany(ctx, kind, recs)
}

func (t countingTx) SettleMany(ctx context.Context, kind string, recs []core.Record) error {
	t.calls.add("SettleMany")
	return t.bt.SettleMany(ctx, kind, recs)
}

func (t countingTx) PendingIDs(ctx context.Context, kind string, ids []string) (map[string]bool, error) {
	t.calls.add("PendingIDs")
	return t.bt.PendingIDs(ctx, kind, ids)
}

func (t countingTx) DeleteOps(ctx context.Context, opIDs []string) error {
	t.calls.add("DeleteOps")
	return t.bt.DeleteOps(ctx, opIDs)
}

func (t countingTx) SetOpState(ctx context.Context, state core.OpState, opIDs []string) (map[string]bool, error) {
	t.calls.add("SetOpState")
	return t.bt.SetOpState(ctx, state, opIDs)
}

func (t countingTx) IdempotentMany(ctx context.Context, principal string, opIDs []string) (map[string]core.IdempotencyRecord, error) {
	t.calls.add("IdempotentMany")
	return t.bt.IdempotentMany(ctx, principal, opIDs)
}

func (t countingTx) PutIdempotentMany(ctx context.Context, recs []core.IdempotencyRecord) error {
	t.calls.add("PutIdempotentMany")
	return t.bt.PutIdempotentMany(ctx, recs)
}

// pushRun is what a replica ended with after the push scenario.
type pushRun struct {
	tables string   // every table of the replica's database, normalized
	events []string // every event, in order, normalized
}

// randomID matches the engine's random op and transaction IDs.
var randomID = regexp.MustCompile(`[0-9a-f]{32}`)

// normalize names random IDs by order of first appearance, so two runs that
// did the same things read the same.
func normalize(s string, names map[string]string) string {
	return randomID.ReplaceAllStringFunc(s, func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		n := fmt.Sprintf("<id%d>", len(names))
		names[id] = n
		return n
	})
}

func eventLine(t *testing.T, ev core.Event) string {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("marshal %T: %v", ev, err)
	}
	line := fmt.Sprintf("%T %s", ev, b)
	switch e := ev.(type) {
	case core.OpFailed:
		line += " err=" + e.Err.Error()
	case core.SyncError:
		line += " err=" + e.Err.Error()
	}
	return line
}

// dumpTables reads every table of the replica's database, in a fixed order.
func dumpTables(t *testing.T, st *sqlite.Store) string {
	t.Helper()
	ctx := context.Background()
	var names []string
	if err := st.DB().NewSelect().Table("sqlite_master").Column("name").
		Where("type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'offsync_schema'").Order("name").Scan(ctx, &names); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, name := range names {
		var rows []map[string]any
		if err := st.DB().NewSelect().Table(name).OrderExpr("rowid").Scan(ctx, &rows); err != nil {
			t.Fatalf("dump %s: %v", name, err)
		}
		j, err := json.Marshal(rows)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s: %s\n", name, j)
	}
	return b.String()
}

// rejectBad refuses for good every op whose payload asks for it.
func rejectBad(_ context.Context, _ core.Principal, op core.Op, _ *core.Record) error {
	if strings.Contains(string(op.Payload), "reject me") {
		return fmt.Errorf("%w: test rule", core.ErrRejected)
	}
	return nil
}

// pushScenario pushes creates, updates, deletes (one answered not found), a
// record with a second op queued behind the in-flight one, replayed answers
// older than the cursor, a rejected op and a resolved deferred conflict,
// from a replica whose transactions go through wrap. It checks the outcome
// of each step and returns what the replica ended with.
func pushScenario(t *testing.T, wrap func(core.Tx) core.Tx) pushRun {
	ctx := context.Background()
	svc := newAuthority(t, &server.Options{Clock: core.NewManualClock(t0), Validate: rejectBad})
	w := &wire{inner: svc}
	raw := openStore(t, "replica.db")
	deferNotes := manualOf(func(core.Conflict) core.Resolution { return core.Defer })
	before := &oneShot{}
	r := newReplicaOn(t, wrapStore{raw, wrap, before}, w, &core.Options{
		Conflicts: core.Conflicts{Kinds: map[string]core.Resolver{"note": deferNotes}}})
	other := newReplica(t, svc, nil)
	sub := r.eng.Subscribe(10000)
	defer sub.Close()
	var evs []string
	names := map[string]string{}
	sync := func(step string, opts ...core.SyncOption) core.Stats {
		t.Helper()
		st, err := r.eng.Sync(ctx, opts...)
		evs = append(evs, fmt.Sprintf("sync %s: %+v err=%v", step, st, err))
		for len(sub.C) > 0 {
			evs = append(evs, normalize(eventLine(t, <-sub.C), names))
		}
		return st
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	title := func(id string) string {
		t.Helper()
		rec, err := r.eng.Get(ctx, "todo", id)
		if errors.Is(err, core.ErrNotFound) {
			return "<none>"
		}
		must(err)
		if rec.Deleted() {
			return "<deleted>"
		}
		return field(t, rec, "title").(string)
	}

	// Creates, one of them rejected for good.
	for _, id := range []string{"a", "b", "c", "d", "e", "f"} {
		must(r.todos.Insert(ctx, &Todo{ID: id, Title: id + "1"}))
	}
	must(r.todos.Insert(ctx, &Todo{ID: "x", Title: "reject me"}))
	must(r.notes.Put(ctx, "n1", map[string]any{"text": "one"}))
	must(r.projs.Put(ctx, "p1", map[string]any{"name": "p"}))
	if st := sync("creates"); st.Pushed != 8 {
		t.Fatalf("creates: pushed %d, want 8", st.Pushed)
	}
	if dead, _ := r.eng.DeadLetters(ctx); len(dead) != 1 || dead[0].ID != "x" {
		t.Fatalf("dead letters = %+v", dead)
	}
	// A local-only column, which settling keeps.
	if _, err := raw.DB().ExecContext(ctx, "UPDATE todos SET note = 'mine ' || id"); err != nil {
		t.Fatal(err)
	}
	mustSync(t, other)

	// Updates and deletes; the authority answers not found to one delete.
	must(r.todos.Update(ctx, &Todo{ID: "a", Title: "a2"}, core.Changed("title")))
	must(r.todos.Delete(ctx, "c"))
	must(r.todos.Delete(ctx, "d"))
	must(r.projs.Delete(ctx, "p1"))
	w.set(func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
		var fwd []core.Op
		var out []core.PushResult
		for _, op := range ops {
			if op.Kind == "todo" && op.ID == "d" {
				out = append(out, core.PushResult{OpID: op.OpID, Status: core.StatusNotFound, Reason: "no such record"})
			} else {
				fwd = append(fwd, op)
			}
		}
		res, err := inner.Push(ctx, fwd)
		return append(out, res...), err
	})
	if st := sync("updates"); st.Pushed != 4 {
		t.Fatalf("updates: pushed %d, want 4", st.Pushed)
	}
	w.set(nil)
	if title("a") != "a2" || title("c") != "<deleted>" || title("d") != "<none>" {
		t.Fatalf("after updates: a=%s c=%s d=%s", title("a"), title("c"), title("d"))
	}

	// An op coalesced into a new one after the outbox was read, before the
	// push marks it in flight: it waits for the next batch.
	must(r.notes.Put(ctx, "n2", map[string]any{"text": "first"}))
	must(r.todos.Update(ctx, &Todo{ID: "a", Title: "a3"}, core.Changed("title")))
	before.arm(func() { must(r.notes.Put(ctx, "n2", map[string]any{"text": "second"})) })
	w.reset()
	sync("coalesced")
	if len(w.pushes) != 2 || len(w.pushes[0]) != 1 || w.pushes[0][0].ID != "a" ||
		len(w.pushes[1]) != 1 || string(w.pushes[1][0].Payload) != `{"text":"second"}` {
		t.Fatalf("pushes = %+v, want a, then n2 at its second version", w.pushes)
	}

	// Answers lost: b, e and f stay in flight, applied at the authority.
	for _, id := range []string{"b", "e", "f"} {
		must(r.todos.Update(ctx, &Todo{ID: id, Title: id + "2"}, core.Changed("title")))
	}
	w.set(dropAnswer)
	sync("lost answers")
	w.set(nil)
	// A second op of b queued behind the in-flight one.
	must(r.todos.Update(ctx, &Todo{ID: "b", Title: "b3"}, core.Changed("title")))
	// Another writer moves e and a on; a pull passes them, keeping e.
	mustSync(t, other)
	must(other.todos.Update(ctx, &Todo{ID: "e", Title: "e-other"}, core.Changed("title")))
	must(other.todos.Update(ctx, &Todo{ID: "a", Title: "a-other"}, core.Changed("title")))
	mustSync(t, other)
	if st := sync("pull only", core.PushKinds()); st.Kept < 1 {
		t.Fatalf("pull only: kept %d, want e kept", st.Kept)
	}
	if title("e") != "e2" || title("a") != "a-other" {
		t.Fatalf("after pull: e=%s a=%s", title("e"), title("a"))
	}
	// The replayed answers of b, e and f are older than the cursor: e must be
	// pulled again; b's second op is rebased onto its answer and pushed.
	sync("replayed")
	for id, want := range map[string]string{"a": "a-other", "b": "b3", "e": "e-other", "f": "f2"} {
		if got := title(id); got != want {
			t.Fatalf("after replayed answers: %s = %s, want %s", id, got, want)
		}
		var note string
		if err := raw.DB().QueryRowContext(ctx, "SELECT note FROM todos WHERE id = ?", id).Scan(&note); err != nil {
			t.Fatal(err)
		}
		if note != "mine "+id {
			t.Fatalf("local column of %s lost: %q", id, note)
		}
	}
	if rec, _ := authGet(t, svc, "todo", "b"); field(t, rec, "title") != "b3" {
		t.Fatalf("authority b = %v", field(t, rec, "title"))
	}

	// A deferred conflict, resolved by the application and pushed.
	mustSync(t, other)
	must(other.notes.Put(ctx, "n1", map[string]any{"text": "theirs"}))
	mustSync(t, other)
	must(r.notes.Put(ctx, "n1", map[string]any{"text": "mine"}))
	sync("conflict")
	inbox, err := r.eng.Conflicts(ctx, core.ConflictFilter{})
	if err != nil || len(inbox) != 1 {
		t.Fatalf("inbox = %+v, %v", inbox, err)
	}
	must(r.eng.Resolve(ctx, inbox[0].OpID, core.AcceptClient))
	sync("resolved")
	if rec, _ := authGet(t, svc, "note", "n1"); field(t, rec, "text") != "mine" {
		t.Fatalf("authority n1 = %v", field(t, rec, "text"))
	}
	for _, op := range r.ops(t) {
		if op.ID != "x" {
			t.Fatalf("op left in the outbox: %+v", op)
		}
	}
	return pushRun{tables: normalize(dumpTables(t, raw), names), events: evs}
}

// TestPushBulkSettleMatchesOneByOne: a store whose transactions are a
// BatchTx and the same store hiding it end a push scenario with the same
// rows, outbox, cursors and events, and the BatchTx really was used.
func TestPushBulkSettleMatchesOneByOne(t *testing.T) {
	calls := &batchCalls{}
	bulk := pushScenario(t, func(tx core.Tx) core.Tx {
		bt, ok := tx.(core.BatchTx)
		if !ok {
			t.Fatal("the SQLite store's Tx is not a core.BatchTx")
		}
		return countingTx{Tx: tx, bt: bt, calls: calls}
	})
	for _, m := range []string{"SetOpState", "DeleteOps", "PendingIDs", "SettleMany"} {
		if calls.get(m) == 0 {
			t.Errorf("the engine never called BatchTx.%s", m)
		}
	}
	one := pushScenario(t, func(tx core.Tx) core.Tx { return plainTx{tx} })
	bt, ot := strings.Split(bulk.tables, "\n"), strings.Split(one.tables, "\n")
	if len(bt) != len(ot) {
		t.Fatalf("tables differ:\nbulk: %s\none:  %s", bulk.tables, one.tables)
	}
	for i := range bt {
		if bt[i] != ot[i] {
			t.Errorf("table differs:\nbulk: %s\none:  %s", bt[i], ot[i])
		}
	}
	if !slices.Equal(bulk.events, one.events) {
		for i := range max(len(bulk.events), len(one.events)) {
			var b, o string
			if i < len(bulk.events) {
				b = bulk.events[i]
			}
			if i < len(one.events) {
				o = one.events[i]
			}
			if b != o {
				t.Fatalf("event %d differs:\nbulk: %s\none:  %s", i, b, o)
			}
		}
	}
}

// TestPushBulkSettleSameRecordTwice: a push that holds two ops of one record
// (our heads never send that; a caller of send could) is settled the one-op
// way even with a BatchTx, and ends like the store without one.
func TestPushBulkSettleSameRecordTwice(t *testing.T) {
	calls := &batchCalls{}
	run := func(t *testing.T, wrap func(core.Tx) core.Tx) (string, []core.Op) {
		ctx := context.Background()
		svc := newAuthority(t, &server.Options{Clock: core.NewManualClock(t0)})
		w := &wire{inner: svc}
		raw := openStore(t, "replica.db")
		r := newReplicaOn(t, wrapStore{Store: raw, wrap: wrap}, w, nil)
		if err := r.todos.Insert(ctx, &Todo{ID: "a", Title: "1"}); err != nil {
			t.Fatal(err)
		}
		mustSync(t, r)
		if err := r.todos.Update(ctx, &Todo{ID: "a", Title: "2"}, core.Changed("title")); err != nil {
			t.Fatal(err)
		}
		w.set(dropAnswer) // op 1 is applied, its answer lost: it stays in flight
		_, _ = r.eng.Sync(ctx)
		w.set(nil)
		if err := r.todos.Update(ctx, &Todo{ID: "a", Title: "3"}, core.Changed("title")); err != nil {
			t.Fatal(err)
		}
		ops := r.ops(t)
		if len(ops) != 2 {
			t.Fatalf("ops = %+v", ops)
		}
		v1, _ := authGet(t, svc, "todo", "a")
		ops[1].BaseUpdatedAt = v1.UpdatedAt // as if rebased: both are applied
		before := calls.get("SettleMany") + calls.get("DeleteOps")
		st, err := core.SendOps(ctx, r.eng, ops)
		if err != nil || st.Pushed != 2 {
			t.Fatalf("send: %+v, %v", st, err)
		}
		if calls.get("SettleMany")+calls.get("DeleteOps") != before {
			t.Error("a push with one record twice was settled in bulk")
		}
		rec, err := r.eng.Get(ctx, "todo", "a")
		if err != nil {
			t.Fatal(err)
		}
		v2, _ := authGet(t, svc, "todo", "a")
		if !rec.UpdatedAt.Equal(v2.UpdatedAt) || field(t, rec, "title") != "3" {
			t.Fatalf("row = %+v, authority = %+v", rec, v2)
		}
		return fmt.Sprintf("%s %s %v", rec.Data, rec.UpdatedAt, rec.DeletedAt), r.ops(t)
	}
	bulkRow, bulkOps := run(t, func(tx core.Tx) core.Tx {
		return countingTx{Tx: tx, bt: tx.(core.BatchTx), calls: calls}
	})
	if calls.get("SettleMany") == 0 {
		t.Error("the first sync did not settle in bulk")
	}
	oneRow, oneOps := run(t, func(tx core.Tx) core.Tx { return plainTx{tx} })
	if bulkRow != oneRow || len(bulkOps) != 0 || len(oneOps) != 0 {
		t.Fatalf("bulk: %s %+v\none:  %s %+v", bulkRow, bulkOps, oneRow, oneOps)
	}
}
