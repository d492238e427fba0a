package core_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

var errBoom = errors.New("boom")

// rowAndOpAgree fails when a row exists without its outbox op or the reverse.
func rowAndOpAgree(t *testing.T, r *replica, kind, id string) error {
	t.Helper()
	_, err := r.eng.Get(context.Background(), kind, id)
	hasRow := err == nil
	hasOp := slices.ContainsFunc(r.ops(t), func(op core.Op) bool { return op.Kind == kind && op.ID == id })
	if hasRow != hasOp {
		return fmt.Errorf("row present=%v but op present=%v", hasRow, hasOp)
	}
	return nil
}

func TestInvariant1_LocalWriteAndOpCommitTogether(t *testing.T) {
	ctx := context.Background()
	r := newReplica(t, newAuthority(t, nil), nil)

	// A user's transaction that fails after the write leaves neither.
	err := r.eng.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		if err := r.todos.InsertTx(ctx, tx, &Todo{ID: "a", Title: "x"}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("err = %v", err)
	}
	if err := rowAndOpAgree(t, r, "todo", "a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.todo(t, "a"); ok {
		t.Fatal("the row of a failed transaction exists")
	}
	// A committed one leaves both.
	if err := r.todos.Insert(ctx, &Todo{ID: "b", Title: "y"}); err != nil {
		t.Fatal(err)
	}
	if err := rowAndOpAgree(t, r, "todo", "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.todo(t, "b"); !ok {
		t.Fatal("committed row missing")
	}

	t.Run("negative control: a writer that commits the row alone is caught", func(t *testing.T) {
		rec, _ := todos.Record(&Todo{ID: "c", Title: "z"})
		rec.Kind = "todo"
		_ = r.store.Update(ctx, func(ctx context.Context, tx core.Tx) error { return tx.Put(ctx, rec) })
		_ = r.store.Update(ctx, func(ctx context.Context, tx core.Tx) error { return errBoom }) // the enqueue fails
		if rowAndOpAgree(t, r, "todo", "c") == nil {
			t.Fatal("the check missed a row committed without its op")
		}
	})
}

// appliedOnce checks that the authority holds id at the version its first
// apply gave it: a second apply would have stamped a newer one.
func appliedOnce(t *testing.T, svc *server.Service, kind, id string, first time.Time) error {
	rec, ok := authGet(t, svc, kind, id)
	if !ok {
		return fmt.Errorf("%s/%s missing at the authority", kind, id)
	}
	if !rec.UpdatedAt.Equal(first) {
		return fmt.Errorf("%s/%s was applied again: version %v, first %v", kind, id, rec.UpdatedAt, first)
	}
	return nil
}

func TestInvariant2_OpLeavesOutboxOnlyWhenAnsweredForGood(t *testing.T) {
	run := func(t *testing.T, forgetful bool) error {
		ctx := context.Background()
		svc := newAuthority(t, nil)
		w := &wire{inner: svc}
		r := newReplica(t, w, nil)
		if err := r.notes.Put(ctx, "n1", map[string]any{"text": "hello"}); err != nil {
			t.Fatal(err)
		}
		w.set(dropAnswer)
		if _, err := r.eng.Sync(ctx); !errors.Is(err, core.ErrUnavailable) {
			t.Fatalf("sync with a lost answer: %v", err)
		}
		ops := r.ops(t)
		if len(ops) != 1 || ops[0].State != core.StateInFlight {
			t.Fatalf("after a lost answer the op must stay in flight: %+v", ops)
		}
		first, ok := authGet(t, svc, "note", "n1")
		if !ok {
			t.Fatal("the authority did not commit the first push")
		}
		if forgetful {
			// An authority without idempotency: every delivery looks new.
			w.set(func(ctx context.Context, ops []core.Op, inner core.Transport) ([]core.PushResult, error) {
				fresh := slices.Clone(ops)
				for i := range fresh {
					fresh[i].OpID = fmt.Sprintf("fresh-%d-%d", i, time.Now().UnixNano())
				}
				res, err := inner.Push(ctx, fresh)
				for i := range res {
					res[i].OpID = ops[i].OpID
				}
				return res, err
			})
		} else {
			w.set(nil)
		}
		mustSync(t, r)
		if ops := r.ops(t); len(ops) != 0 {
			t.Fatalf("outbox not empty after the answer: %+v", ops)
		}
		return appliedOnce(t, svc, "note", "n1", first.UpdatedAt)
	}
	if err := run(t, false); err != nil {
		t.Fatal(err)
	}
	t.Run("negative control: an authority without idempotency is caught", func(t *testing.T) {
		if run(t, true) == nil {
			t.Fatal("the check missed a second apply")
		}
	})
}

// overwriteStore is a broken store whose ApplyPage ignores pending ops.
type overwriteStore struct{ core.Store }

func (s overwriteStore) Update(ctx context.Context, fn func(context.Context, core.Tx) error) error {
	return s.Store.Update(ctx, func(ctx context.Context, tx core.Tx) error { return fn(ctx, overwriteTx{tx}) })
}

type overwriteTx struct{ core.Tx }

func (t overwriteTx) ApplyPage(ctx context.Context, kind string, recs []core.Record) (core.ApplyResult, error) {
	for _, r := range recs {
		if err := t.Put(ctx, r); err != nil {
			return core.ApplyResult{}, err
		}
	}
	return core.ApplyResult{Upserts: len(recs)}, nil
}

func TestInvariant3_PullNeverOverwritesPendingRows(t *testing.T) {
	run := func(t *testing.T, broken bool) error {
		ctx := context.Background()
		svc := newAuthority(t, nil)
		var storeA core.Store = openStore(t, "a.db")
		if broken {
			storeA = overwriteStore{storeA}
		}
		a := newReplicaOn(t, storeA, svc, &core.Options{Conflicts: core.Conflicts{Default: core.ServerWins}})
		b := newReplica(t, svc, nil)
		if err := a.todos.Insert(ctx, &Todo{ID: "x", Title: "first"}); err != nil {
			t.Fatal(err)
		}
		mustSync(t, a)
		mustSync(t, b)
		if err := a.todos.Update(ctx, &Todo{ID: "x", Title: "A"}, core.Changed("title")); err != nil {
			t.Fatal(err)
		}
		if err := b.todos.Update(ctx, &Todo{ID: "x", Title: "B"}, core.Changed("title")); err != nil {
			t.Fatal(err)
		}
		mustSync(t, b)
		st := mustSync(t, a, core.PushKinds()) // pull only
		if got, _ := a.todo(t, "x"); got.Title != "A" {
			return fmt.Errorf("a pull overwrote the pending row: title %q (kept %d)", got.Title, st.Kept)
		}
		if st.Kept != 1 {
			return fmt.Errorf("kept = %d, want 1", st.Kept)
		}
		// When the op leaves the outbox, the row ends at the authority's version.
		mustSync(t, a)
		got, _ := a.todo(t, "x")
		server, _ := authGet(t, svc, "todo", "x")
		if got.Title != "B" || !got.UpdatedAt.Time.Equal(server.UpdatedAt) {
			return fmt.Errorf("row after serverWins = %q@%v, authority @%v", got.Title, got.UpdatedAt, server.UpdatedAt)
		}
		return nil
	}
	if err := run(t, false); err != nil {
		t.Fatal(err)
	}
	t.Run("negative control: a store that overwrites pending rows is caught", func(t *testing.T) {
		if run(t, true) == nil {
			t.Fatal("the check missed an overwritten pending row")
		}
	})
}

// commitAnywayStore is a broken store that commits whatever fn wrote even
// when fn fails or panics.
type commitAnywayStore struct{ core.Store }

func (s commitAnywayStore) Update(ctx context.Context, fn func(context.Context, core.Tx) error) error {
	return s.Store.Update(ctx, func(ctx context.Context, tx core.Tx) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = nil
			}
		}()
		_ = fn(ctx, tx)
		return nil
	})
}

type crash struct{}

func TestInvariant4_PageAndCursorCommitTogether(t *testing.T) {
	run := func(t *testing.T, broken bool) error {
		ctx := context.Background()
		svc := newAuthority(t, nil)
		writer := newReplica(t, svc, nil)
		for i := range 30 {
			if err := writer.notes.Put(ctx, fmt.Sprintf("n%02d", i), map[string]any{"i": i}); err != nil {
				t.Fatal(err)
			}
		}
		mustSync(t, writer)

		hits := 0
		var st core.Store = openStore(t, "r.db")
		if broken {
			st = commitAnywayStore{st}
		}
		r := newReplicaOn(t, st, svc, &core.Options{PageSize: 10, Checkpoint: func(p string) {
			if p == "mid_page_apply" {
				if hits++; hits == 2 {
					panic(crash{})
				}
			}
		}})
		func() {
			defer func() {
				if p := recover(); p != nil && p != (crash{}) {
					panic(p)
				}
			}()
			_, _ = r.eng.Sync(ctx)
		}()
		rows, err := r.eng.List(ctx, "note", core.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.eng.Cursor(ctx, "note")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 10 || c.ID != "n09" {
			return fmt.Errorf("after a crash in page 2: %d rows, cursor at %q; want 10 rows and n09", len(rows), c.ID)
		}
		mustSync(t, r)
		if rows, _ := r.eng.List(ctx, "note", core.ListOptions{}); len(rows) != 30 {
			return fmt.Errorf("after resuming: %d rows", len(rows))
		}
		return nil
	}
	if err := run(t, false); err != nil {
		t.Fatal(err)
	}
	t.Run("negative control: a store that commits half a transaction is caught", func(t *testing.T) {
		if run(t, true) == nil {
			t.Fatal("the check missed rows committed without their cursor")
		}
	})
}

// staleBaseStore is a broken store whose UpdateOp never moves an op's base.
type staleBaseStore struct{ core.Store }

func (s staleBaseStore) Update(ctx context.Context, fn func(context.Context, core.Tx) error) error {
	return s.Store.Update(ctx, func(ctx context.Context, tx core.Tx) error { return fn(ctx, staleBaseTx{tx}) })
}

type staleBaseTx struct{ core.Tx }

func (t staleBaseTx) UpdateOp(ctx context.Context, old string, op core.Op) error {
	if prev, err := t.GetOp(ctx, old); err == nil {
		op.BaseUpdatedAt, op.BasePayload = prev.BaseUpdatedAt, prev.BasePayload
	}
	return t.Tx.UpdateOp(ctx, old, op)
}

func TestInvariant5_OneRecordInOrderCoalescedAndRebased(t *testing.T) {
	ctx := context.Background()
	t.Run("pending upserts coalesce into one op with a new id", func(t *testing.T) {
		svc := newAuthority(t, nil)
		r := newReplica(t, svc, nil)
		if err := r.todos.Insert(ctx, &Todo{ID: "x", Title: "a"}); err != nil {
			t.Fatal(err)
		}
		mustSync(t, r)
		if err := r.todos.Update(ctx, &Todo{ID: "x", Title: "b"}, core.Changed("title")); err != nil {
			t.Fatal(err)
		}
		first := r.ops(t)[0].OpID
		if err := r.todos.Update(ctx, &Todo{ID: "x", Title: "b", Done: true}, core.Changed("done")); err != nil {
			t.Fatal(err)
		}
		ops := r.ops(t)
		if len(ops) != 1 || ops[0].OpID == first || !slices.Equal(ops[0].ChangedFields, []string{"done", "title"}) {
			t.Fatalf("coalesced ops = %+v", ops)
		}
		if ops[0].BaseUpdatedAt.IsZero() || ops[0].BasePayload == nil {
			t.Fatal("the coalesced op lost its base")
		}
	})
	t.Run("create then delete before any push is nothing", func(t *testing.T) {
		svc := newAuthority(t, nil)
		w := &wire{inner: svc}
		r := newReplica(t, w, nil)
		if err := r.todos.Insert(ctx, &Todo{ID: "x"}); err != nil {
			t.Fatal(err)
		}
		if err := r.todos.Delete(ctx, "x"); err != nil {
			t.Fatal(err)
		}
		mustSync(t, r)
		if len(w.pushes) != 0 || len(r.ops(t)) != 0 {
			t.Fatalf("pushes %v, ops %v", w.pushes, r.ops(t))
		}
		if _, ok := r.todo(t, "x"); ok {
			t.Fatal("row still there")
		}
	})
	t.Run("re-create after delete uses the tombstone's version", func(t *testing.T) {
		svc := newAuthority(t, nil)
		r := newReplica(t, svc, nil)
		_ = r.todos.Insert(ctx, &Todo{ID: "x", Title: "1"})
		mustSync(t, r)
		_ = r.todos.Delete(ctx, "x")
		mustSync(t, r)
		tomb, _ := authGet(t, svc, "todo", "x")
		if !tomb.Deleted() {
			t.Fatal("no tombstone")
		}
		if err := r.todos.Insert(ctx, &Todo{ID: "x", Title: "2"}); err != nil {
			t.Fatal(err)
		}
		if ops := r.ops(t); !ops[0].BaseUpdatedAt.Equal(tomb.UpdatedAt) {
			t.Fatalf("base %v, tombstone %v", ops[0].BaseUpdatedAt, tomb.UpdatedAt)
		}
		if st := mustSync(t, r); st.Conflicts != 0 {
			t.Fatalf("conflicts = %d", st.Conflicts)
		}
		if rec, _ := authGet(t, svc, "todo", "x"); rec.Deleted() || field(t, rec, "title") != "2" {
			t.Fatalf("authority = %+v", rec)
		}
	})

	run := func(t *testing.T, broken bool) error {
		svc := newAuthority(t, nil)
		w := &wire{inner: svc}
		var st core.Store = openStore(t, "r.db")
		if broken {
			st = staleBaseStore{st}
		}
		r := newReplicaOn(t, st, w, &core.Options{Conflicts: core.Conflicts{Default: core.ServerWins}})
		_ = r.todos.Insert(ctx, &Todo{ID: "x", Title: "1"})
		mustSync(t, r)
		if err := r.todos.Update(ctx, &Todo{ID: "x", Title: "2"}, core.Changed("title")); err != nil {
			t.Fatal(err)
		}
		w.set(dropAnswer) // op 1 reaches the authority, its answer is lost: it stays in flight
		_, _ = r.eng.Sync(ctx)
		w.set(nil)
		if err := r.todos.Update(ctx, &Todo{ID: "x", Title: "3"}, core.Changed("title")); err != nil {
			t.Fatal(err)
		}
		if ops := r.ops(t); len(ops) != 2 {
			t.Fatalf("an edit must not coalesce into an op already sent: %+v", ops)
		}
		w.reset()
		stats := mustSync(t, r)
		for _, b := range w.pushes {
			if len(b) > 1 && b[0].ID == b[1].ID {
				return fmt.Errorf("two ops of one record in one push")
			}
		}
		if len(w.pushes) != 2 {
			return fmt.Errorf("pushes = %d, want the two ops one after the other", len(w.pushes))
		}
		if stats.Conflicts != 0 {
			return fmt.Errorf("the second op was not rebased onto the first one's answer: %d conflicts", stats.Conflicts)
		}
		if rec, _ := authGet(t, svc, "todo", "x"); field(t, rec, "title") != "3" {
			return fmt.Errorf("authority title = %v", field(t, rec, "title"))
		}
		return nil
	}
	if err := run(t, false); err != nil {
		t.Fatal(err)
	}
	t.Run("negative control: a store that does not rebase is caught", func(t *testing.T) {
		if run(t, true) == nil {
			t.Fatal("the check missed a stale base")
		}
	})
}

func TestInvariant6_PushInEnqueueOrderPullInTableOrder(t *testing.T) {
	run := func(t *testing.T, reorder bool) error {
		ctx := context.Background()
		svc := newAuthority(t, nil)
		w := &wire{inner: svc}
		var tr core.Transport = w
		if reorder {
			tr = reversingTransport{w}
		}
		r := newReplica(t, tr, &core.Options{Tables: []core.Table{projects, todos, notes}})
		_ = r.notes.Put(ctx, "n0", map[string]any{"text": "first"})
		_ = r.projs.Put(ctx, "p1", map[string]any{"name": "p"})
		_ = r.todos.Insert(ctx, &Todo{ID: "t1", Title: "in p1"})
		_ = r.notes.Put(ctx, "n1", map[string]any{"text": "last"})
		mustSync(t, r)
		var got []string
		for _, b := range w.pushes {
			for _, op := range b {
				got = append(got, op.Kind+"/"+op.ID)
			}
		}
		if want := []string{"note/n0", "project/p1", "todo/t1", "note/n1"}; !slices.Equal(got, want) {
			return fmt.Errorf("push order %v, want %v", got, want)
		}
		if want := []string{"project", "todo", "note"}; !slices.Equal(w.pulls, want) {
			return fmt.Errorf("pull order %v, want %v", w.pulls, want)
		}
		return nil
	}
	if err := run(t, false); err != nil {
		t.Fatal(err)
	}
	t.Run("negative control: a transport that reorders a batch is caught", func(t *testing.T) {
		if run(t, true) == nil {
			t.Fatal("the check missed a reordered push")
		}
	})
}

// reversingTransport delivers each push batch in reverse order.
type reversingTransport struct{ inner core.Transport }

func (r reversingTransport) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	return r.inner.Pull(ctx, req)
}

func (r reversingTransport) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	rev := slices.Clone(ops)
	slices.Reverse(rev)
	res, err := r.inner.Push(ctx, rev)
	slices.Reverse(res)
	return res, err
}

// A row kept by a pull (it had a pending create) and then created-and-deleted
// locally before any push leaves the outbox with no answer: the row must
// still end at the authority's version (invariant 3).
func TestInvariant3_KeptRowComesBackAfterCreateThenDelete(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil)
	a := newReplica(t, svc, nil)
	b := newReplica(t, svc, nil)
	_ = a.notes.Put(ctx, "x", map[string]any{"by": "a"})
	_ = b.notes.Put(ctx, "x", map[string]any{"by": "b"})
	mustSync(t, b)
	if st := mustSync(t, a, core.PushKinds()); st.Kept != 1 {
		t.Fatalf("kept = %d", st.Kept)
	}
	if err := a.notes.Delete(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if len(a.ops(t)) != 0 {
		t.Fatal("create then delete left an op")
	}
	mustSync(t, a)
	rec, err := a.eng.Get(ctx, "note", "x")
	if err != nil || field(t, rec, "by") != "b" {
		t.Fatalf("after the sync the replica holds %s (%v), want the authority's version", rec.Data, err)
	}
}
