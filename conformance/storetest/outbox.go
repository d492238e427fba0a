package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

func ops(t *testing.T, s core.Store, f core.OpFilter) []core.Op {
	t.Helper()
	var out []core.Op
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		var err error
		out, err = tx.Ops(ctx, f)
		return err
	})
	return out
}

func opIDs(list []core.Op) []string {
	var ids []string
	for _, op := range list {
		ids = append(ids, op.OpID)
	}
	return ids
}

// TestOutboxOrder: Enqueue assigns increasing Seq across kinds; Ops lists in
// that order and filters by kinds, states, record and limit (guarantee G6, docs/guarantees.md).
func TestOutboxOrder(t *testing.T, h Harness) {
	s := open(t, h)
	a := upsertOp("op1", NoteKind, "n1")
	b := upsertOp("op2", ItemKind, "i1")
	c := upsertOp("op3", NoteKind, "n1")
	c.State = core.StateDeferred
	d := upsertOp("op4", ItemKind, "i2")
	d.Type = core.OpDelete
	d.Payload = nil
	enqueue(t, s, a, b)
	enqueue(t, s, c, d)
	seqs := []int64{a.Seq, b.Seq, c.Seq, d.Seq}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("Seq not increasing: %v", seqs)
		}
	}
	wantIDs(t, "Ops", opIDs(ops(t, s, core.OpFilter{})), "op1", "op2", "op3", "op4")
	wantIDs(t, "Ops of a kind", opIDs(ops(t, s, core.OpFilter{Kinds: []string{ItemKind}})), "op2", "op4")
	wantIDs(t, "Ops by state", opIDs(ops(t, s, core.OpFilter{States: []core.OpState{core.StatePending}})), "op1", "op2", "op4")
	wantIDs(t, "Ops of a record", opIDs(ops(t, s, core.OpFilter{Kind: NoteKind, ID: "n1"})), "op1", "op3")
	wantIDs(t, "Ops limit", opIDs(ops(t, s, core.OpFilter{Limit: 2})), "op1", "op2")
	// Paging: the ops after a place in the outbox, with the other filters.
	wantIDs(t, "Ops after op2", opIDs(ops(t, s, core.OpFilter{AfterSeq: b.Seq})), "op3", "op4")
	wantIDs(t, "Ops after op1, limit", opIDs(ops(t, s, core.OpFilter{AfterSeq: a.Seq, Limit: 2})), "op2", "op3")
	wantIDs(t, "Ops of a kind after op1", opIDs(ops(t, s, core.OpFilter{Kinds: []string{NoteKind}, AfterSeq: a.Seq})), "op3")
	wantIDs(t, "Ops of a record after op1", opIDs(ops(t, s, core.OpFilter{Kind: NoteKind, ID: "n1", AfterSeq: a.Seq})), "op3")
	wantIDs(t, "Ops after the last", opIDs(ops(t, s, core.OpFilter{AfterSeq: d.Seq})))
	// Every kind at once, paged, as a push reads its heads.
	all := []string{ItemKind, NoteKind}
	wantIDs(t, "Ops of every kind", opIDs(ops(t, s, core.OpFilter{Kinds: all})), "op1", "op2", "op3", "op4")
	wantIDs(t, "Ops of every kind after op1, limit", opIDs(ops(t, s, core.OpFilter{Kinds: all, AfterSeq: a.Seq, Limit: 2})), "op2", "op3")
	wantIDs(t, "Ops of every kind and more after op3", opIDs(ops(t, s, core.OpFilter{Kinds: append(all, "st_unknown"), AfterSeq: c.Seq, Limit: 2})), "op4")
	wantIDs(t, "Ops of every kind by state", opIDs(ops(t, s, core.OpFilter{Kinds: all, States: []core.OpState{core.StateDeferred}})), "op3")
	wantIDs(t, "Ops combined", opIDs(ops(t, s, core.OpFilter{Kinds: []string{NoteKind}, States: []core.OpState{core.StateDeferred}})), "op3")
	// A duplicate op id is refused, and the outbox is unchanged.
	err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error { return tx.Enqueue(ctx, upsertOp("op1", ItemKind, "z")) })
	if err == nil {
		t.Fatal("Enqueue of a duplicate op id succeeded")
	}
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		if err := tx.DeleteOp(ctx, "op2"); err != nil {
			return err
		}
		return tx.DeleteOp(ctx, "missing")
	})
	wantIDs(t, "Ops after delete", opIDs(ops(t, s, core.OpFilter{})), "op1", "op3", "op4")
	e := upsertOp("op5", ItemKind, "i1")
	enqueue(t, s, e)
	if e.Seq <= d.Seq {
		t.Fatalf("Seq after a delete %d, want > %d", e.Seq, d.Seq)
	}
	var gerr error
	view(t, s, func(ctx context.Context, tx core.Tx) error { _, gerr = tx.GetOp(ctx, "op2"); return nil })
	wantErr(t, "GetOp deleted", gerr, core.ErrNotFound)
}

// TestOpRoundTrip: every field of an op is kept exactly, times to the
// microsecond, ChangedFields nil (unknown) distinct from empty.
func TestOpRoundTrip(t *testing.T, h Harness) {
	s := open(t, h)
	full := &core.Op{
		OpID: "full", Kind: ItemKind, ID: "a", Type: core.OpUpsert,
		Payload: json.RawMessage(`{"title":"t","count":3}`), BaseUpdatedAt: at(1),
		BasePayload: json.RawMessage(`{"title":"base"}`), ChangedFields: []string{"title", "count"},
		EditedAt: at(2), Force: true, EnqueuedAt: at(3), TxID: "tx-1", SchemaVersion: 4, Attempts: 2,
		NextAttemptAt: at(4), LastError: "boom", State: core.StateInFlight,
	}
	empty := &core.Op{OpID: "empty", Kind: NoteKind, ID: "b", Type: core.OpDelete, ChangedFields: []string{}, EnqueuedAt: at(5)}
	enqueue(t, s, full, empty)
	if empty.State != core.StatePending {
		t.Errorf("Enqueue left State %q, want pending", empty.State)
	}
	var got []core.Op
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		for _, id := range []string{"full", "empty"} {
			op, err := tx.GetOp(ctx, id)
			if err != nil {
				return err
			}
			got = append(got, op)
		}
		return nil
	})
	sameOp(t, got[0], *full)
	sameOp(t, got[1], *empty)
	if got[1].ChangedFields == nil {
		t.Errorf("empty ChangedFields came back nil (unknown)")
	}
	none := upsertOp("none", ItemKind, "c")
	enqueue(t, s, none)
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		op, err := tx.GetOp(ctx, "none")
		if err == nil && op.ChangedFields != nil {
			t.Errorf("nil ChangedFields came back %q", op.ChangedFields)
		}
		return err
	})
	for _, bad := range []*core.Op{
		{Kind: ItemKind, ID: "a", Type: core.OpUpsert},
		{OpID: "x", Kind: ItemKind, Type: core.OpUpsert},
		{OpID: "x", Kind: ItemKind, ID: "a", Type: "explode"},
		{OpID: "x", Kind: ItemKind, ID: "a", Type: core.OpUpsert, Payload: json.RawMessage(`{`)},
	} {
		err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error { return tx.Enqueue(ctx, bad) })
		wantErr(t, fmt.Sprintf("Enqueue %+v", *bad), err, core.ErrInvalid)
	}
}

func sameOp(t *testing.T, got, want core.Op) {
	t.Helper()
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{{"BaseUpdatedAt", got.BaseUpdatedAt, want.BaseUpdatedAt}, {"EditedAt", got.EditedAt, want.EditedAt},
		{"EnqueuedAt", got.EnqueuedAt, want.EnqueuedAt}, {"NextAttemptAt", got.NextAttemptAt, want.NextAttemptAt}} {
		if !c.got.Equal(c.want) {
			t.Errorf("op %s %s = %v, want %v", want.OpID, c.name, c.got, c.want)
		}
	}
	jsonEq := func(name string, g, w json.RawMessage) {
		if (g == nil) != (w == nil) {
			t.Errorf("op %s %s = %s, want %s", want.OpID, name, g, w)
			return
		}
		if g == nil {
			return
		}
		var gv, wv any
		if json.Unmarshal(g, &gv) != nil || json.Unmarshal(w, &wv) != nil || !reflect.DeepEqual(gv, wv) {
			t.Errorf("op %s %s = %s, want %s", want.OpID, name, g, w)
		}
	}
	jsonEq("Payload", got.Payload, want.Payload)
	jsonEq("BasePayload", got.BasePayload, want.BasePayload)
	got.BaseUpdatedAt, got.EditedAt, got.EnqueuedAt, got.NextAttemptAt = want.BaseUpdatedAt, want.EditedAt, want.EnqueuedAt, want.NextAttemptAt
	got.Payload, got.BasePayload = want.Payload, want.BasePayload
	if !reflect.DeepEqual(got, want) {
		t.Errorf("op = %+v\nwant %+v", got, want)
	}
}

// TestUpdateOpKeepsPlace: UpdateOp rewrites an op, under a new OpID too,
// and keeps its Seq and its place in the outbox (the coalescing of guarantee G5, docs/guarantees.md).
func TestUpdateOpKeepsPlace(t *testing.T, h Harness) {
	s := open(t, h)
	a, b, c := upsertOp("a", ItemKind, "x"), upsertOp("b", ItemKind, "y"), upsertOp("c", NoteKind, "z")
	enqueue(t, s, a, b, c)
	nb := *b
	nb.OpID = "b2"
	nb.Payload = json.RawMessage(`{"title":"merged"}`)
	nb.ChangedFields = []string{"title"}
	nb.Attempts = 3
	nb.State = core.StateDead
	update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.UpdateOp(ctx, "b", nb) })
	got := ops(t, s, core.OpFilter{})
	wantIDs(t, "Ops after UpdateOp", opIDs(got), "a", "b2", "c")
	if got[1].Seq != b.Seq {
		t.Errorf("Seq after UpdateOp %d, want %d", got[1].Seq, b.Seq)
	}
	nb.Seq = b.Seq
	sameOp(t, got[1], nb)
	var gerr error
	view(t, s, func(ctx context.Context, tx core.Tx) error { _, gerr = tx.GetOp(ctx, "b"); return nil })
	wantErr(t, "GetOp old id", gerr, core.ErrNotFound)
	err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error { return tx.UpdateOp(ctx, "missing", nb) })
	wantErr(t, "UpdateOp missing", err, core.ErrNotFound)
}

// TestCountOps: ops counted by kind and state.
func TestCountOps(t *testing.T, h Harness) {
	s := open(t, h)
	mk := func(id, kind string, st core.OpState) *core.Op {
		op := upsertOp(id, kind, id)
		op.State = st
		return op
	}
	enqueue(t, s, mk("1", ItemKind, core.StatePending), mk("2", ItemKind, core.StatePending),
		mk("3", ItemKind, core.StateDead), mk("4", NoteKind, core.StateInFlight))
	var got []core.OpCount
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		var err error
		got, err = tx.CountOps(ctx)
		return err
	})
	want := map[core.OpCount]bool{
		{Kind: ItemKind, State: core.StatePending, Count: 2}:  true,
		{Kind: ItemKind, State: core.StateDead, Count: 1}:     true,
		{Kind: NoteKind, State: core.StateInFlight, Count: 1}: true,
	}
	if len(got) != len(want) {
		t.Fatalf("CountOps = %+v", got)
	}
	for _, c := range got {
		if !want[c] {
			t.Fatalf("CountOps = %+v", got)
		}
	}
}

// TestCursors: a kind without a cursor reads zero; SetCursor round trips to
// the microsecond and replaces.
func TestCursors(t *testing.T, h Harness) {
	s := open(t, h)
	read := func(kind string) core.Cursor {
		var c core.Cursor
		view(t, s, func(ctx context.Context, tx core.Tx) error {
			var err error
			c, err = tx.Cursor(ctx, kind)
			return err
		})
		return c
	}
	if c := read(ItemKind); !c.IsZero() {
		t.Fatalf("cursor of a new kind = %+v", c)
	}
	c1 := core.Cursor{UpdatedAt: at(1), ID: "a"}
	update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.SetCursor(ctx, ItemKind, c1) })
	if c := read(ItemKind); !c.UpdatedAt.Equal(c1.UpdatedAt) || c.ID != c1.ID {
		t.Fatalf("cursor = %+v, want %+v", c, c1)
	}
	c2 := core.Cursor{UpdatedAt: at(2), ID: "b"}
	update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.SetCursor(ctx, ItemKind, c2) })
	if c := read(ItemKind); !c.UpdatedAt.Equal(c2.UpdatedAt) || c.ID != c2.ID {
		t.Fatalf("cursor = %+v, want %+v", c, c2)
	}
	if c := read(NoteKind); !c.IsZero() {
		t.Fatalf("another kind's cursor = %+v", c)
	}
	update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.SetCursor(ctx, ItemKind, core.Cursor{}) })
	if c := read(ItemKind); !c.IsZero() {
		t.Fatalf("cursor after reset = %+v", c)
	}
}

// TestConflictInbox: entries keep their records and changed fields, are
// replaced by op id, filtered by kinds and id, and deleted.
func TestConflictInbox(t *testing.T, h Harness) {
	s := open(t, h)
	baseRec := item(t, "a", "base", "o", at(1))
	local := item(t, "a", "local", "o", at(1))
	server := item(t, "a", "server", "o", at(2))
	server.EditedAt = at(-5)
	e1 := core.ConflictEntry{OpID: "op1", Kind: ItemKind, ID: "a", Type: core.OpUpsert, Base: &baseRec, Local: &local,
		Server: &server, ChangedFields: []string{"title"}, DetectedAt: at(3)}
	e2 := core.ConflictEntry{OpID: "op2", Kind: NoteKind, ID: "n", Type: core.OpDelete, DetectedAt: at(4)}
	read := func(f core.ConflictFilter) []core.ConflictEntry {
		var out []core.ConflictEntry
		view(t, s, func(ctx context.Context, tx core.Tx) error {
			var err error
			out, err = tx.Conflicts(ctx, f)
			return err
		})
		return out
	}
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		if err := tx.PutConflict(ctx, e1); err != nil {
			return err
		}
		return tx.PutConflict(ctx, e2)
	})
	all := read(core.ConflictFilter{})
	if len(all) != 2 {
		t.Fatalf("Conflicts = %d entries, want 2", len(all))
	}
	g := all[0]
	if g.OpID != "op1" || g.Kind != ItemKind || g.ID != "a" || g.Type != core.OpUpsert || !g.DetectedAt.Equal(e1.DetectedAt) ||
		!reflect.DeepEqual(g.ChangedFields, e1.ChangedFields) || g.Base == nil || g.Local == nil || g.Server == nil {
		t.Fatalf("entry = %+v, want %+v", g, e1)
	}
	sameRecord(t, *g.Base, baseRec)
	sameRecord(t, *g.Local, local)
	sameRecord(t, *g.Server, server)
	if h := all[1]; h.Base != nil || h.Local != nil || h.Server != nil || h.ChangedFields != nil {
		t.Fatalf("entry without records = %+v", h)
	}
	if got := read(core.ConflictFilter{Kinds: []string{NoteKind}}); len(got) != 1 || got[0].OpID != "op2" {
		t.Fatalf("Conflicts of a kind = %+v", got)
	}
	if got := read(core.ConflictFilter{ID: "a"}); len(got) != 1 || got[0].OpID != "op1" {
		t.Fatalf("Conflicts of an id = %+v", got)
	}
	e1.Local = nil
	e1.ChangedFields = nil
	update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.PutConflict(ctx, e1) })
	if got := read(core.ConflictFilter{ID: "a"}); len(got) != 1 || got[0].Local != nil || got[0].ChangedFields != nil {
		t.Fatalf("replaced entry = %+v", got)
	}
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		if err := tx.DeleteConflict(ctx, "op1"); err != nil {
			return err
		}
		return tx.DeleteConflict(ctx, "missing")
	})
	if got := read(core.ConflictFilter{}); len(got) != 1 || got[0].OpID != "op2" {
		t.Fatalf("Conflicts after delete = %+v", got)
	}
}

// TestMeta: a missing key is ErrNotFound; SetMeta sets and replaces; ""
// deletes.
func TestMeta(t *testing.T, h Harness) {
	s := open(t, h)
	read := func(k string) (string, error) {
		var v string
		var merr error
		view(t, s, func(ctx context.Context, tx core.Tx) error { v, merr = tx.Meta(ctx, k); return nil })
		return v, merr
	}
	_, err := read("k")
	wantErr(t, "Meta missing", err, core.ErrNotFound)
	for _, v := range []string{"one", "two ✓"} {
		update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.SetMeta(ctx, "k", v) })
		if got, err := read("k"); err != nil || got != v {
			t.Fatalf("Meta = %q, %v; want %q", got, err, v)
		}
	}
	update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.SetMeta(ctx, "k", "") })
	_, err = read("k")
	wantErr(t, "Meta after delete", err, core.ErrNotFound)
}

var errBoom = errors.New("storetest: boom")

// TestUpdateRollback: when fn fails (or panics), neither the row nor its op
// is written (guarantee G1, docs/guarantees.md).
func TestUpdateRollback(t *testing.T, h Harness) {
	s := open(t, h)
	write := func(ctx context.Context, tx core.Tx) error {
		if err := tx.Put(ctx, item(t, "a", "A", "o", at(1))); err != nil {
			return err
		}
		return tx.Enqueue(ctx, upsertOp("op-a", ItemKind, "a"))
	}
	err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		if err := write(ctx, tx); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "Update", err, errBoom)
	check := func(what string) {
		t.Helper()
		_, err := get(t, s, ItemKind, "a")
		wantErr(t, what+": Get", err, core.ErrNotFound)
		if got := ops(t, s, core.OpFilter{}); len(got) != 0 {
			t.Fatalf("%s: ops %v", what, opIDs(got))
		}
	}
	check("after error")
	func() {
		defer func() {
			if r := recover(); r != errBoom {
				t.Fatalf("recovered %v, want the panic value", r)
			}
		}()
		_ = s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
			if err := write(ctx, tx); err != nil {
				return err
			}
			panic(errBoom)
		})
	}()
	check("after panic")
	update(t, s, write)
	mustGet(t, s, ItemKind, "a")
	if got := ops(t, s, core.OpFilter{}); len(got) != 1 {
		t.Fatalf("ops after commit = %v", opIDs(got))
	}
}

// TestNestedUpdateJoins: an Update or View called with the ctx given to fn
// joins the outer transaction: it sees its writes, and the outer rollback
// undoes the inner writes.
func TestNestedUpdateJoins(t *testing.T, h Harness) {
	s := open(t, h)
	err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		if err := tx.Put(ctx, item(t, "outer", "o", "o", at(1))); err != nil {
			return err
		}
		if err := s.Update(ctx, func(ctx context.Context, tx2 core.Tx) error {
			if _, err := tx2.Get(ctx, ItemKind, "outer"); err != nil {
				return fmt.Errorf("inner Update does not see the outer write: %w", err)
			}
			return tx2.Put(ctx, item(t, "inner", "i", "o", at(2)))
		}); err != nil {
			return err
		}
		if err := s.View(ctx, func(ctx context.Context, tx3 core.Tx) error {
			_, err := tx3.Get(ctx, ItemKind, "inner")
			return err
		}); err != nil {
			return fmt.Errorf("nested View does not see the inner write: %w", err)
		}
		return errBoom
	})
	wantErr(t, "outer Update", err, errBoom)
	for _, id := range []string{"outer", "inner"} {
		_, err := get(t, s, ItemKind, id)
		wantErr(t, "Get "+id+" after the outer rollback", err, core.ErrNotFound)
	}
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		return s.Update(ctx, func(ctx context.Context, tx core.Tx) error { return tx.Put(ctx, item(t, "x", "x", "o", at(3))) })
	})
	mustGet(t, s, ItemKind, "x")
}

// TestSavepoint: a failing savepoint undoes only its own writes; nested
// savepoints work; the error is returned.
func TestSavepoint(t *testing.T, h Harness) {
	s := open(t, h)
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		if err := tx.Put(ctx, item(t, "a", "A", "o", at(1))); err != nil {
			return err
		}
		err := tx.Savepoint(ctx, func(ctx context.Context) error {
			if err := tx.Put(ctx, item(t, "b", "B", "o", at(1))); err != nil {
				return err
			}
			if err := tx.Enqueue(ctx, upsertOp("op-b", ItemKind, "b")); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			return fmt.Errorf("Savepoint returned %v, want the fn's error", err)
		}
		err = tx.Savepoint(ctx, func(ctx context.Context) error {
			if err := tx.Put(ctx, item(t, "c", "C", "o", at(1))); err != nil {
				return err
			}
			inner := tx.Savepoint(ctx, func(ctx context.Context) error {
				if err := tx.Put(ctx, item(t, "d", "D", "o", at(1))); err != nil {
					return err
				}
				return errBoom
			})
			if !errors.Is(inner, errBoom) {
				return fmt.Errorf("inner Savepoint returned %v", inner)
			}
			return tx.Put(ctx, item(t, "e", "E", "o", at(1)))
		})
		if err != nil {
			return err
		}
		return tx.Put(ctx, item(t, "f", "F", "o", at(1)))
	})
	wantIDs(t, "rows", list(t, s, ItemKind, core.ListOptions{}), "a", "c", "e", "f")
	if got := ops(t, s, core.OpFilter{}); len(got) != 0 {
		t.Fatalf("ops = %v, want none", opIDs(got))
	}
}
