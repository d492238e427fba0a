package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// The batch tests run only on a store whose transactions implement
// core.BatchTx (an optional power: a store has all of it or none). Each
// checks that a batch method gives what the one-row methods give.

// bigBatch is more rows than any statement or IN list of a store takes at
// once, so a batch call needs several statements.
const bigBatch = 2300

// requireBatch skips the test unless the store's transactions are
// core.BatchTx.
func requireBatch(t *testing.T, s core.Store) {
	t.Helper()
	var ok bool
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		_, ok = tx.(core.BatchTx)
		return nil
	})
	if !ok {
		t.Skip("store does not implement core.BatchTx")
	}
}

func asBatch(tx core.Tx) (core.BatchTx, error) {
	b, ok := tx.(core.BatchTx)
	if !ok {
		return nil, fmt.Errorf("storetest: transaction %T is not a core.BatchTx", tx)
	}
	return b, nil
}

// batchUpdate runs fn in an Update and returns the Update's error.
func batchUpdate(t *testing.T, s core.Store, fn func(ctx context.Context, b core.BatchTx) error) error {
	t.Helper()
	return s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		b, err := asBatch(tx)
		if err != nil {
			return err
		}
		return fn(ctx, b)
	})
}

// batchView runs fn in a View and fails the test on an error.
func batchView(t *testing.T, s core.Store, fn func(ctx context.Context, b core.BatchTx) error) {
	t.Helper()
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		b, err := asBatch(tx)
		if err != nil {
			return err
		}
		return fn(ctx, b)
	})
}

// rowState is what the one-row methods show of a kind: every row (List
// with IncludeDeleted) and the ids List shows by default (neither
// tombstones nor locally deleted rows).
type rowState struct {
	all     []core.Record
	visible []string
}

func snapshot(t *testing.T, s core.Store, kind string) rowState {
	t.Helper()
	var st rowState
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		var err error
		if st.all, err = tx.List(ctx, kind, core.ListOptions{IncludeDeleted: true}); err != nil {
			return err
		}
		vis, err := tx.List(ctx, kind, core.ListOptions{})
		st.visible = recIDs(vis)
		return err
	})
	return st
}

func sameState(t *testing.T, what string, got, want rowState) {
	t.Helper()
	wantIDs(t, what+": all rows", recIDs(got.all), recIDs(want.all)...)
	wantIDs(t, what+": visible rows", got.visible, want.visible...)
	for i := range got.all {
		sameRecord(t, got.all[i], want.all[i])
	}
}

func bigIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return ids
}

// TestBatchGetMany: GetMany returns what Get returns for each id — live
// rows, tombstones and locally deleted rows — and nothing for missing ids
// or rows of another kind; duplicate ids and more ids than one IN list
// takes are fine; an unknown kind is ErrUnknownKind.
func TestBatchGetMany(t *testing.T, h Harness) {
	s := open(t, h)
	requireBatch(t, s)
	other := core.Documents("st_note_other")
	if err := s.Register(t.Context(), other); err != nil {
		t.Fatalf("Register: %v", err)
	}
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		live := mk("a", "A ✓", "alice", at(1))
		live.EditedAt = at(-3)
		tomb := mk("b", "B", "bob", at(2))
		tomb.DeletedAt = at(2)
		marked := mk("c", "C", "carol", at(3))
		put(t, s, live, tomb, marked)
		update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.MarkDeletedLocal(ctx, kind, "c", at(4)) })
		// Same id in another kind of each storage (typed, document).
		put(t, s, core.Record{Kind: other.Kind(), ID: "x", UpdatedAt: at(1), Data: json.RawMessage(`{"n":1}`)})
		y := "y-" + kind
		if kind == ItemKind {
			put(t, s, note(t, y, "N", "o", at(1)))
		} else {
			put(t, s, item(t, y, "I", "o", at(1)))
		}
		ids := []string{"a", "missing", "b", "c", "a", "x", y, "b", ""}
		var got map[string]core.Record
		batchView(t, s, func(ctx context.Context, b core.BatchTx) error {
			var err error
			got, err = b.GetMany(ctx, kind, ids)
			return err
		})
		if len(got) != 3 {
			t.Fatalf("GetMany returned %d rows (%v), want a, b, c", len(got), keys(got))
		}
		for _, id := range ids {
			one, err := get(t, s, kind, id)
			r, ok := got[id]
			switch {
			case err == nil && !ok:
				t.Fatalf("GetMany has no %q, Get has it", id)
			case err != nil && ok:
				t.Fatalf("GetMany has %q, Get says %v", id, err)
			case ok:
				sameRecord(t, r, one)
			}
		}
		sameRecord(t, got["a"], live)
		sameRecord(t, got["b"], tomb)
		sameRecord(t, got["c"], marked)
		// None and empty.
		batchView(t, s, func(ctx context.Context, b core.BatchTx) error {
			for _, ids := range [][]string{nil, {}, {"missing"}} {
				m, err := b.GetMany(ctx, kind, ids)
				if err != nil {
					return fmt.Errorf("GetMany(%q): %w", ids, err)
				}
				if len(m) != 0 {
					t.Fatalf("GetMany(%q) = %v, want nothing", ids, keys(m))
				}
			}
			return nil
		})
		// More ids than one statement takes, with missing and repeated ids
		// spread through them.
		recs := make([]core.Record, 1200)
		for i, id := range bigIDs("r", len(recs)) {
			recs[i] = mk(id, fmt.Sprintf("title %d", i), "o", at(int64(i)))
			if i%7 == 0 {
				recs[i].DeletedAt = at(int64(i))
			}
		}
		apply(t, s, kind, recs...)
		var many []string
		for i, r := range recs {
			many = append(many, r.ID)
			if i%9 == 0 {
				many = append(many, fmt.Sprintf("gone%05d", i))
			}
		}
		many = append(many, recIDs(recs[:600])...)
		batchView(t, s, func(ctx context.Context, b core.BatchTx) error {
			var err error
			got, err = b.GetMany(ctx, kind, many)
			return err
		})
		if len(got) != len(recs) {
			t.Fatalf("GetMany of %d ids returned %d rows, want %d", len(many), len(got), len(recs))
		}
		for _, r := range recs {
			g, ok := got[r.ID]
			if !ok {
				t.Fatalf("GetMany misses %q", r.ID)
			}
			sameRecord(t, g, r)
		}
	})
	var err error
	batchView(t, s, func(ctx context.Context, b core.BatchTx) error {
		_, err = b.GetMany(ctx, "st_nope", []string{"a"})
		return nil
	})
	wantErr(t, "GetMany of an unknown kind", err, core.ErrUnknownKind)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestBatchPutMany: PutMany leaves a store exactly as Put of each record
// in turn does — inserts, replaces, tombstones, local-only columns of
// existing rows kept (a locally deleted row stays hidden) — and the later
// record of a repeated id wins, across statements too.
func TestBatchPutMany(t *testing.T, h Harness) {
	one, many := open(t, h), open(t, h)
	requireBatch(t, many)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		history := func(s core.Store) {
			put(t, s, mk("a", "A", "alice", at(1)), mk("b", "B", "bob", at(1)), mk("k", "K", "kim", at(1)))
			update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.MarkDeletedLocal(ctx, kind, "b", at(2)) })
		}
		history(one)
		history(many)
		tomb := mk("d", "D", "dan", at(5))
		tomb.DeletedAt = at(5)
		edited := mk("c", "C", "carol", at(4))
		edited.EditedAt = at(3)
		recs := []core.Record{
			mk("a", "A2", "alice", at(3)), // replace
			mk("b", "B2", "bob", at(3)),   // replace a locally deleted row
			edited,                        // insert
			tomb,                          // insert a tombstone
			mk("e", "first", "eve", at(6)),
			mk("e", "second", "eve", at(7)), // the later wins
		}
		update(t, one, func(ctx context.Context, tx core.Tx) error {
			for _, r := range recs {
				if err := tx.Put(ctx, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err := batchUpdate(t, many, func(ctx context.Context, b core.BatchTx) error { return b.PutMany(ctx, kind, recs) }); err != nil {
			t.Fatalf("PutMany: %v", err)
		}
		sameState(t, "PutMany vs Put", snapshot(t, many, kind), snapshot(t, one, kind))
		for _, r := range recs[:4] {
			sameRecord(t, mustGet(t, many, kind, r.ID), r)
		}
		sameRecord(t, mustGet(t, many, kind, "e"), recs[5])
		wantIDs(t, "List after PutMany", list(t, many, kind, core.ListOptions{}), "a", "c", "e", "k")
		// Nothing to write is fine.
		if err := batchUpdate(t, many, func(ctx context.Context, b core.BatchTx) error { return b.PutMany(ctx, kind, nil) }); err != nil {
			t.Fatalf("PutMany of no records: %v", err)
		}
		sameState(t, "after an empty PutMany", snapshot(t, many, kind), snapshot(t, one, kind))
	})
	err := batchUpdate(t, many, func(ctx context.Context, b core.BatchTx) error {
		return b.PutMany(ctx, "st_nope", []core.Record{{Kind: "st_nope", ID: "a", UpdatedAt: base, Data: json.RawMessage(`{}`)}})
	})
	wantErr(t, "PutMany of an unknown kind", err, core.ErrUnknownKind)
}

// TestBatchPutManyLarge: more records than one statement takes are all
// written, a repeated id far apart ends as the later record, and locally
// deleted rows among them stay hidden.
func TestBatchPutManyLarge(t *testing.T, h Harness) {
	s := open(t, h)
	requireBatch(t, s)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		ids := bigIDs("r", bigBatch)
		// Every 100th row exists and is locally deleted.
		var old []core.Record
		for i := 0; i < len(ids); i += 100 {
			old = append(old, mk(ids[i], "old", "o", at(0)))
		}
		put(t, s, old...)
		update(t, s, func(ctx context.Context, tx core.Tx) error {
			for _, r := range old {
				if err := tx.MarkDeletedLocal(ctx, kind, r.ID, at(1)); err != nil {
					return err
				}
			}
			return nil
		})
		recs := make([]core.Record, 0, len(ids)+2)
		for i, id := range ids {
			r := mk(id, fmt.Sprintf("title %d", i), "o", at(int64(i+10)))
			if i%10 == 3 {
				r.DeletedAt = r.UpdatedAt
			}
			recs = append(recs, r)
		}
		lastFirst := mk(ids[0], "final", "o", at(99999))
		firstLast := mk(ids[len(ids)-1], "final too", "o", at(99998))
		recs = append([]core.Record{firstLast}, recs...)
		recs = append(recs, lastFirst)
		if err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error { return b.PutMany(ctx, kind, recs) }); err != nil {
			t.Fatalf("PutMany: %v", err)
		}
		want := map[string]core.Record{}
		for _, r := range recs {
			want[r.ID] = r
		}
		st := snapshot(t, s, kind)
		if len(st.all) != len(ids) {
			t.Fatalf("%d rows after PutMany, want %d", len(st.all), len(ids))
		}
		var visible []string
		for i, r := range st.all {
			w := want[r.ID]
			sameRecord(t, r, w)
			if w.DeletedAt.IsZero() && i%100 != 0 {
				visible = append(visible, r.ID)
			}
		}
		wantIDs(t, "visible rows after PutMany", st.visible, visible...)
		sameRecord(t, mustGet(t, s, kind, ids[0]), lastFirst)
		sameRecord(t, mustGet(t, s, kind, ids[len(ids)-1]), recs[len(recs)-2])
	})
}

// TestBatchPutManyBadData: a record whose data is not a JSON object or does
// not fit the typed model, a record without an id, or one of another kind
// is ErrInvalid, as from Put, and the rolled-back Update leaves the store
// as it was — also when the bad record comes after a statement's worth of
// good ones.
func TestBatchPutManyBadData(t *testing.T, h Harness) {
	s := open(t, h)
	requireBatch(t, s)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		put(t, s, mk("a", "A", "alice", at(1)), mk("m", "M", "mo", at(1)))
		update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.MarkDeletedLocal(ctx, kind, "m", at(2)) })
		before := snapshot(t, s, kind)
		bad := []string{`[1,2]`, `"text"`, `42`, `not json`, `{"title":`}
		if kind == ItemKind {
			bad = append(bad, `{"title":5}`, `{"count":"seven"}`, `{"done":"yes"}`)
		}
		var cases []core.Record
		for _, d := range bad {
			cases = append(cases, core.Record{Kind: kind, ID: "bad", UpdatedAt: base, Data: json.RawMessage(d)})
		}
		noID := mk("", "t", "o", base)
		otherKind := mk("x", "t", "o", base)
		otherKind.Kind = "st_other"
		cases = append(cases, noID, otherKind)
		var big []core.Record
		for i, id := range bigIDs("g", 1200) {
			big = append(big, mk(id, "good", "o", at(int64(i))))
		}
		for ci, badRec := range cases {
			what := fmt.Sprintf("record %q data %s", badRec.ID, badRec.Data)
			// Put refuses it (a record of another kind as unknown, since
			// Put has no kind but the record's).
			perr := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error { return tx.Put(ctx, badRec) })
			if badRec.Kind == kind {
				wantErr(t, "Put "+what, perr, core.ErrInvalid)
			} else if perr == nil {
				t.Fatalf("Put %s succeeded", what)
			}
			calls := [][]core.Record{
				{mk("new", "N", "o", at(3)), mk("a", "A2", "alice", at(3)), mk("m", "M2", "mo", at(3)), badRec},
				{badRec, mk("new", "N", "o", at(3))},
			}
			if ci%4 == 0 || ci == len(cases)-1 {
				// After a statement's worth of good records.
				calls = append(calls, append(append([]core.Record{mk("a", "A3", "alice", at(4))}, big...), badRec))
			}
			for _, recs := range calls {
				var callErr error
				err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error {
					callErr = b.PutMany(ctx, kind, recs)
					return callErr
				})
				wantErr(t, fmt.Sprintf("PutMany of %d records with %s", len(recs), what), callErr, core.ErrInvalid)
				wantErr(t, "Update of a failed PutMany", err, core.ErrInvalid)
				sameState(t, "after a failed PutMany", snapshot(t, s, kind), before)
				callErr = nil
				err = batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error {
					callErr = b.SettleMany(ctx, kind, recs)
					return callErr
				})
				wantErr(t, fmt.Sprintf("SettleMany of %d records with %s", len(recs), what), callErr, core.ErrInvalid)
				wantErr(t, "Update of a failed SettleMany", err, core.ErrInvalid)
				sameState(t, "after a failed SettleMany", snapshot(t, s, kind), before)
			}
		}
	})
}

// TestBatchSettleMany: after SettleMany each row is exactly its record,
// local deletion mark included: a live record clears a local mark (the
// row shows again, and stays shown after a Put), a tombstone sets it (a
// later Put, which keeps local columns, leaves the row hidden); repeated
// ids end as the later record; rows not given are left alone.
func TestBatchSettleMany(t *testing.T, h Harness) {
	s := open(t, h)
	requireBatch(t, s)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		put(t, s, mk("a", "A", "o", at(1)), mk("b", "B", "o", at(1)), mk("c", "C", "o", at(1)), mk("u", "U", "o", at(1)),
			mk("v", "V", "o", at(1)))
		update(t, s, func(ctx context.Context, tx core.Tx) error {
			for _, id := range []string{"a", "b", "v"} {
				if err := tx.MarkDeletedLocal(ctx, kind, id, at(2)); err != nil {
					return err
				}
			}
			return nil
		})
		tombOf := func(r core.Record) core.Record {
			r.DeletedAt = r.UpdatedAt
			return r
		}
		a := mk("a", "A2", "o", at(3))                                         // live over a locally deleted row
		b := tombOf(mk("b", "B2", "o", at(3)))                                 // tombstone over a locally deleted row
		c := tombOf(mk("c", "C2", "o", at(3)))                                 // tombstone over a live row
		d := mk("d", "D", "o", at(3))                                          // new live row
		e := tombOf(mk("e", "E", "o", at(3)))                                  // new tombstone
		f1, f2 := tombOf(mk("f", "F1", "o", at(3))), mk("f", "F2", "o", at(4)) // the later (live) wins
		g1, g2 := mk("g", "G1", "o", at(3)), tombOf(mk("g", "G2", "o", at(4))) // the later (tombstone) wins
		recs := []core.Record{a, b, c, d, e, f1, g1, f2, g2}
		if err := batchUpdate(t, s, func(ctx context.Context, bt core.BatchTx) error { return bt.SettleMany(ctx, kind, recs) }); err != nil {
			t.Fatalf("SettleMany: %v", err)
		}
		for _, r := range []core.Record{a, b, c, d, e, f2, g2} {
			sameRecord(t, mustGet(t, s, kind, r.ID), r)
		}
		wantIDs(t, "List after SettleMany", list(t, s, kind, core.ListOptions{}), "a", "d", "f", "u")
		wantIDs(t, "List all after SettleMany", list(t, s, kind, core.ListOptions{IncludeDeleted: true}),
			"a", "b", "c", "d", "e", "f", "g", "u", "v")
		// The marks show through a Put of live records (Put keeps them).
		var live []core.Record
		for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "u", "v"} {
			live = append(live, mk(id, "live "+id, "o", at(9)))
		}
		put(t, s, live...)
		wantIDs(t, "List after Put over settled rows", list(t, s, kind, core.ListOptions{}), "a", "d", "f", "u")
		// Settling live records clears every mark.
		if err := batchUpdate(t, s, func(ctx context.Context, bt core.BatchTx) error { return bt.SettleMany(ctx, kind, live) }); err != nil {
			t.Fatalf("SettleMany: %v", err)
		}
		wantIDs(t, "List after settling live records", list(t, s, kind, core.ListOptions{}),
			"a", "b", "c", "d", "e", "f", "g", "u", "v")
		for _, r := range live {
			sameRecord(t, mustGet(t, s, kind, r.ID), r)
		}
		if err := batchUpdate(t, s, func(ctx context.Context, bt core.BatchTx) error { return bt.SettleMany(ctx, kind, nil) }); err != nil {
			t.Fatalf("SettleMany of no records: %v", err)
		}
	})
	err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error {
		return b.SettleMany(ctx, "st_nope", []core.Record{{Kind: "st_nope", ID: "a", UpdatedAt: base, Data: json.RawMessage(`{}`)}})
	})
	wantErr(t, "SettleMany of an unknown kind", err, core.ErrUnknownKind)
}

// TestBatchSettleManyLarge: more records than one statement takes, live
// and tombstones mixed over rows with and without local marks, each end
// exactly as its record.
func TestBatchSettleManyLarge(t *testing.T, h Harness) {
	s := open(t, h)
	requireBatch(t, s)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		ids := bigIDs("r", bigBatch)
		var old []core.Record
		for i := 0; i < len(ids); i += 3 {
			old = append(old, mk(ids[i], "old", "o", at(0)))
		}
		apply(t, s, kind, old...)
		update(t, s, func(ctx context.Context, tx core.Tx) error {
			for i := 0; i < len(ids); i += 33 {
				if err := tx.MarkDeletedLocal(ctx, kind, ids[i], at(1)); err != nil {
					return err
				}
			}
			return nil
		})
		recs := make([]core.Record, len(ids))
		var visible []string
		for i, id := range ids {
			recs[i] = mk(id, fmt.Sprintf("title %d", i), "o", at(int64(i+10)))
			if i%4 == 0 {
				recs[i].DeletedAt = recs[i].UpdatedAt
			} else {
				visible = append(visible, id)
			}
		}
		if err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error { return b.SettleMany(ctx, kind, recs) }); err != nil {
			t.Fatalf("SettleMany: %v", err)
		}
		st := snapshot(t, s, kind)
		if len(st.all) != len(recs) {
			t.Fatalf("%d rows after SettleMany, want %d", len(st.all), len(recs))
		}
		for i := range recs {
			sameRecord(t, st.all[i], recs[i])
		}
		wantIDs(t, "visible rows after SettleMany", st.visible, visible...)
		// The tombstones' marks are set: a pull of live records, which
		// keeps local columns, leaves them hidden.
		var live []core.Record
		for i, id := range ids {
			live = append(live, mk(id, "live", "o", at(int64(i+bigBatch))))
		}
		apply(t, s, kind, live...)
		wantIDs(t, "visible rows after a pull over settled rows", list(t, s, kind, core.ListOptions{}), visible...)
	})
}

// TestBatchPendingIDs: PendingIDs says of each id what Ops(OpFilter{Kind,
// ID}) says — any op, whatever its state, of this kind; an op of the same
// id in another kind does not count; repeated, missing and many ids are
// fine; an unknown kind is ErrUnknownKind.
func TestBatchPendingIDs(t *testing.T, h Harness) {
	s := open(t, h)
	requireBatch(t, s)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		// Nothing in the outbox yet for this kind.
		pending := func(ids []string) map[string]bool {
			t.Helper()
			var m map[string]bool
			batchView(t, s, func(ctx context.Context, b core.BatchTx) error {
				var err error
				m, err = b.PendingIDs(ctx, kind, ids)
				return err
			})
			return m
		}
		check := func(ids []string) {
			t.Helper()
			m := pending(ids)
			in := map[string]bool{}
			view(t, s, func(ctx context.Context, tx core.Tx) error {
				for _, id := range ids {
					in[id] = true
					of, err := tx.Ops(ctx, core.OpFilter{Kind: kind, ID: id})
					if err != nil {
						return err
					}
					if want := len(of) > 0; m[id] != want {
						t.Fatalf("PendingIDs[%q] = %v, Ops of the record say %v", id, m[id], want)
					}
				}
				return nil
			})
			for id, v := range m {
				if v && !in[id] {
					t.Fatalf("PendingIDs has %q, which was not asked", id)
				}
			}
		}
		if m := pending([]string{"p", "f"}); len(m) != 0 && (m["p"] || m["f"]) {
			t.Fatalf("PendingIDs with an empty outbox = %v", m)
		}
		other := ItemKind
		if kind == ItemKind {
			other = NoteKind
		}
		states := map[string]core.OpState{"p": core.StatePending, "f": core.StateInFlight, "d": core.StateDeferred, "x": core.StateDead}
		for id, st := range states {
			op := upsertOp("op-"+kind+"-"+id, kind, id)
			op.State = st
			enqueue(t, s, op)
		}
		free := "free-" + kind
		enqueue(t, s, upsertOp("op-"+kind+"-p2", kind, "p"), upsertOp("op-other-"+kind, other, free))
		ids := []string{"p", "f", free, "d", "x", "missing", "p", ""}
		check(ids)
		if m := pending(ids); !m["p"] || !m["f"] || !m["d"] || !m["x"] || m[free] {
			t.Fatalf("PendingIDs = %v", m)
		}
		check(nil)
		// More ids than one IN list takes, pending ones spread through.
		big := bigIDs("r", 1200)
		var many []*core.Op
		for i := 5; i < len(big); i += 250 {
			many = append(many, upsertOp(fmt.Sprintf("op-%s-big-%d", kind, i), kind, big[i]))
		}
		enqueue(t, s, many...)
		check(append(big, "p", "x"))
		n := 0
		for _, v := range pending(big) {
			if v {
				n++
			}
		}
		if n != len(many) {
			t.Fatalf("PendingIDs of %d ids found %d pending, want %d", len(big), n, len(many))
		}
	})
	var err error
	batchView(t, s, func(ctx context.Context, b core.BatchTx) error {
		_, err = b.PendingIDs(ctx, "st_nope", []string{"a"})
		return nil
	})
	wantErr(t, "PendingIDs of an unknown kind", err, core.ErrUnknownKind)
}

// TestBatchDeleteOps: DeleteOps removes the ops as DeleteOp does, keeps the
// order of the rest, and ignores missing and repeated ids; many at once.
func TestBatchDeleteOps(t *testing.T, h Harness) {
	s := open(t, h)
	requireBatch(t, s)
	a, b, c, d, e := upsertOp("a", ItemKind, "x"), upsertOp("b", NoteKind, "y"), upsertOp("c", ItemKind, "z"),
		upsertOp("d", ItemKind, "x"), upsertOp("e", NoteKind, "w")
	d.State = core.StateDead
	enqueue(t, s, a, b, c, d, e)
	if err := batchUpdate(t, s, func(ctx context.Context, bt core.BatchTx) error {
		return bt.DeleteOps(ctx, []string{"b", "missing", "d", "b"})
	}); err != nil {
		t.Fatalf("DeleteOps: %v", err)
	}
	wantIDs(t, "Ops after DeleteOps", opIDs(ops(t, s, core.OpFilter{})), "a", "c", "e")
	for _, id := range []string{"b", "d"} {
		var gerr error
		view(t, s, func(ctx context.Context, tx core.Tx) error { _, gerr = tx.GetOp(ctx, id); return nil })
		wantErr(t, "GetOp of a deleted op", gerr, core.ErrNotFound)
	}
	for _, ids := range [][]string{nil, {}, {"missing"}} {
		if err := batchUpdate(t, s, func(ctx context.Context, bt core.BatchTx) error { return bt.DeleteOps(ctx, ids) }); err != nil {
			t.Fatalf("DeleteOps(%q): %v", ids, err)
		}
	}
	wantIDs(t, "Ops after DeleteOps of nothing", opIDs(ops(t, s, core.OpFilter{})), "a", "c", "e")
	// Many at once; every third is kept.
	var many []*core.Op
	var del, keep []string
	for i, id := range bigIDs("op", 1100) {
		many = append(many, upsertOp(id, ItemKind, fmt.Sprintf("r%d", i%50)))
		if i%3 == 0 {
			keep = append(keep, id)
		} else {
			del = append(del, id)
		}
	}
	enqueue(t, s, many...)
	if err := batchUpdate(t, s, func(ctx context.Context, bt core.BatchTx) error { return bt.DeleteOps(ctx, del) }); err != nil {
		t.Fatalf("DeleteOps of %d: %v", len(del), err)
	}
	wantIDs(t, "Ops after a large DeleteOps", opIDs(ops(t, s, core.OpFilter{})), append([]string{"a", "c", "e"}, keep...)...)
	// A rolled-back DeleteOps deletes nothing.
	err := batchUpdate(t, s, func(ctx context.Context, bt core.BatchTx) error {
		if err := bt.DeleteOps(ctx, keep); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "Update", err, errBoom)
	wantIDs(t, "Ops after a rolled-back DeleteOps", opIDs(ops(t, s, core.OpFilter{})), append([]string{"a", "c", "e"}, keep...)...)
}

func getOp(t *testing.T, s core.Store, id string) core.Op {
	t.Helper()
	var op core.Op
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		var err error
		op, err = tx.GetOp(ctx, id)
		return err
	})
	return op
}

// TestBatchSetOpState: SetOpState sets the state of the ops that exist and
// returns exactly those ids (also when the state is already the one
// asked), leaving every other column, Seq and outbox order alone; an
// unknown state is ErrInvalid.
func TestBatchSetOpState(t *testing.T, h Harness) {
	s := open(t, h)
	requireBatch(t, s)
	full := &core.Op{
		OpID: "full", Kind: ItemKind, ID: "a", Type: core.OpUpsert,
		Payload: json.RawMessage(`{"title":"t","count":3}`), BaseUpdatedAt: at(1),
		BasePayload: json.RawMessage(`{"title":"base"}`), ChangedFields: []string{"title", "count"},
		EditedAt: at(2), Force: true, EnqueuedAt: at(3), TxID: "tx-1", SchemaVersion: 4, Attempts: 2,
		NextAttemptAt: at(4), LastError: "boom", State: core.StateInFlight,
	}
	del := &core.Op{OpID: "del", Kind: NoteKind, ID: "b", Type: core.OpDelete, ChangedFields: []string{}, EnqueuedAt: at(5), State: core.StateDead}
	same := upsertOp("same", ItemKind, "c")
	same.State = core.StateDeferred
	untouched := upsertOp("untouched", ItemKind, "d")
	enqueue(t, s, full, del, same, untouched)
	before := map[string]core.Op{}
	for _, id := range []string{"full", "del", "same", "untouched"} {
		before[id] = getOp(t, s, id)
	}
	var found map[string]bool
	if err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error {
		var err error
		found, err = b.SetOpState(ctx, core.StateDeferred, []string{"full", "missing", "del", "same", "full"})
		return err
	}); err != nil {
		t.Fatalf("SetOpState: %v", err)
	}
	n := 0
	for id, v := range found {
		if v {
			n++
			if id != "full" && id != "del" && id != "same" {
				t.Fatalf("SetOpState returned %q", id)
			}
		}
	}
	if n != 3 || !found["full"] || !found["del"] || !found["same"] {
		t.Fatalf("SetOpState returned %v, want full, del and same", found)
	}
	for _, id := range []string{"full", "del", "same"} {
		want := before[id]
		want.State = core.StateDeferred
		sameOp(t, getOp(t, s, id), want)
	}
	sameOp(t, getOp(t, s, "untouched"), before["untouched"])
	wantIDs(t, "Ops after SetOpState", opIDs(ops(t, s, core.OpFilter{})), "full", "del", "same", "untouched")
	wantIDs(t, "deferred ops", opIDs(ops(t, s, core.OpFilter{States: []core.OpState{core.StateDeferred}})), "full", "del", "same")
	// Every state round trips.
	for _, st := range []core.OpState{core.StatePending, core.StateInFlight, core.StateDead, core.StateDeferred} {
		if err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error {
			_, err := b.SetOpState(ctx, st, []string{"del"})
			return err
		}); err != nil {
			t.Fatalf("SetOpState(%q): %v", st, err)
		}
		if got := getOp(t, s, "del"); got.State != st {
			t.Fatalf("state after SetOpState(%q) = %q", st, got.State)
		}
	}
	// None, and only missing ids.
	for _, ids := range [][]string{nil, {"missing"}} {
		if err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error {
			m, err := b.SetOpState(ctx, core.StateDead, ids)
			if err == nil && (m["missing"] || len(m) > 1) {
				t.Fatalf("SetOpState(%q) = %v", ids, m)
			}
			return err
		}); err != nil {
			t.Fatalf("SetOpState(%q): %v", ids, err)
		}
	}
	for _, bad := range []core.OpState{"explode", ""} {
		var callErr error
		err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error {
			_, callErr = b.SetOpState(ctx, bad, []string{"full"})
			return callErr
		})
		wantErr(t, fmt.Sprintf("SetOpState(%q)", bad), callErr, core.ErrInvalid)
		wantErr(t, fmt.Sprintf("Update of SetOpState(%q)", bad), err, core.ErrInvalid)
		if got := getOp(t, s, "full"); got.State != core.StateDeferred {
			t.Fatalf("state after a refused SetOpState = %q", got.State)
		}
	}
	// Many at once.
	var many []*core.Op
	var ids []string
	for i, id := range bigIDs("op", 1100) {
		many = append(many, upsertOp(id, NoteKind, fmt.Sprintf("n%d", i)))
		if i%2 == 1 {
			ids = append(ids, id, "gone-"+id)
		}
	}
	enqueue(t, s, many...)
	if err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error {
		var err error
		found, err = b.SetOpState(ctx, core.StateInFlight, ids)
		return err
	}); err != nil {
		t.Fatalf("SetOpState of %d: %v", len(ids), err)
	}
	n = 0
	for _, v := range found {
		if v {
			n++
		}
	}
	if n != len(ids)/2 {
		t.Fatalf("SetOpState of %d ids found %d, want %d", len(ids), n, len(ids)/2)
	}
	var want []string
	for i := 1; i < len(many); i += 2 {
		want = append(want, many[i].OpID)
	}
	wantIDs(t, "in-flight ops", opIDs(ops(t, s, core.OpFilter{Kinds: []string{NoteKind}, States: []core.OpState{core.StateInFlight}})), want...)
}

func sameIdem(t testing.TB, got, want core.IdempotencyRecord) {
	t.Helper()
	if got.Principal != want.Principal || got.OpID != want.OpID || got.RequestHash != want.RequestHash ||
		got.Status != want.Status || !got.CreatedAt.Equal(want.CreatedAt) || (got.Record == nil) != (want.Record == nil) {
		t.Fatalf("idempotency record = %+v, want %+v", got, want)
	}
	if want.Record != nil {
		sameRecord(t, *got.Record, *want.Record)
	}
}

func idemMany(t *testing.T, s core.Store, principal string, opIDs []string) map[string]core.IdempotencyRecord {
	t.Helper()
	var m map[string]core.IdempotencyRecord
	batchView(t, s, func(ctx context.Context, b core.BatchTx) error {
		var err error
		m, err = b.IdempotentMany(ctx, principal, opIDs)
		return err
	})
	return m
}

// agreeIdem checks that IdempotentMany(principal, opIDs) has exactly the
// records Idempotent finds, and that they are equal.
func agreeIdem(t *testing.T, s core.Store, principal string, opIDs []string) map[string]core.IdempotencyRecord {
	t.Helper()
	m := idemMany(t, s, principal, opIDs)
	asked := map[string]bool{}
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		for _, id := range opIDs {
			asked[id] = true
			one, err := tx.Idempotent(ctx, principal, id)
			r, ok := m[id]
			switch {
			case err == nil && !ok:
				t.Fatalf("IdempotentMany(%q) has no %q, Idempotent has it", principal, id)
			case err != nil && ok:
				t.Fatalf("IdempotentMany(%q) has %q, Idempotent says %v", principal, id, err)
			case err != nil && !errors.Is(err, core.ErrNotFound):
				return err
			case ok:
				sameIdem(t, r, one)
			}
		}
		return nil
	})
	for id := range m {
		if !asked[id] {
			t.Fatalf("IdempotentMany(%q) has %q, which was not asked", principal, id)
		}
	}
	return m
}

// TestBatchIdempotentMany: IdempotentMany returns what Idempotent returns
// for each op id of one principal — records with and without a Record,
// nothing for missing ids or other principals' records; repeated and
// many ids are fine.
func TestBatchIdempotentMany(t *testing.T, h Harness) {
	s := open(t, h)
	requireBatch(t, s)
	rec := item(t, "a", "A", "o", at(1))
	tomb := note(t, "n", "N", "o", at(2))
	tomb.DeletedAt = at(2)
	r1 := core.IdempotencyRecord{Principal: "alice", OpID: "op1", RequestHash: "h1", Status: core.StatusApplied, Record: &rec, CreatedAt: at(10)}
	r2 := core.IdempotencyRecord{Principal: "bob", OpID: "op1", RequestHash: "h2", Status: core.StatusNotFound, CreatedAt: at(20)}
	r3 := core.IdempotencyRecord{Principal: "alice", OpID: "op3", RequestHash: "h3", Status: core.StatusApplied, CreatedAt: at(30)}
	r4 := core.IdempotencyRecord{Principal: "", OpID: "op1", RequestHash: "h4", Status: core.StatusApplied, Record: &tomb, CreatedAt: at(40)}
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		for _, r := range []core.IdempotencyRecord{r1, r2, r3, r4} {
			if err := tx.PutIdempotent(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	m := agreeIdem(t, s, "alice", []string{"op1", "op2", "op3", "op1", ""})
	if len(m) != 2 {
		t.Fatalf("IdempotentMany(alice) = %v, want op1 and op3", keys(m))
	}
	sameIdem(t, m["op1"], r1)
	sameIdem(t, m["op3"], r3)
	m = agreeIdem(t, s, "bob", []string{"op1", "op3"})
	sameIdem(t, m["op1"], r2)
	m = agreeIdem(t, s, "", []string{"op1"})
	sameIdem(t, m["op1"], r4)
	if m := agreeIdem(t, s, "carol", []string{"op1", "op3"}); len(m) != 0 {
		t.Fatalf("IdempotentMany of another principal = %v", keys(m))
	}
	if m := agreeIdem(t, s, "alice", nil); len(m) != 0 {
		t.Fatalf("IdempotentMany of no ids = %v", keys(m))
	}
	// Many at once.
	var many []string
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		for i, id := range bigIDs("big", 1200) {
			many = append(many, id)
			if i%2 == 0 {
				continue
			}
			r := core.IdempotencyRecord{Principal: "alice", OpID: id, RequestHash: "h" + id, Status: core.StatusApplied, CreatedAt: at(int64(i))}
			if i%3 == 0 {
				r.Record = &rec
			}
			if err := tx.PutIdempotent(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if m := agreeIdem(t, s, "alice", many); len(m) != 600 {
		t.Fatalf("IdempotentMany of %d ids found %d, want 600", len(many), len(m))
	}
}

// TestBatchPutIdempotentMany: PutIdempotentMany writes records as
// PutIdempotent does — insert or replace, Record nil or not, per principal
// — the later of a repeated key wins, many at once; a record without an op
// id is ErrInvalid and the rolled-back Update writes nothing.
func TestBatchPutIdempotentMany(t *testing.T, h Harness) {
	s := open(t, h)
	requireBatch(t, s)
	rec := item(t, "a", "A", "o", at(1))
	rec.EditedAt = at(-1)
	rec2 := note(t, "n", "N", "o", at(2))
	rec2.DeletedAt = at(2)
	old := core.IdempotencyRecord{Principal: "alice", OpID: "op1", RequestHash: "h0", Status: core.StatusApplied, Record: &rec, CreatedAt: at(1)}
	oldNil := core.IdempotencyRecord{Principal: "alice", OpID: "op2", RequestHash: "h0", Status: core.StatusNotFound, CreatedAt: at(1)}
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		if err := tx.PutIdempotent(ctx, old); err != nil {
			return err
		}
		return tx.PutIdempotent(ctx, oldNil)
	})
	r1 := core.IdempotencyRecord{Principal: "alice", OpID: "op1", RequestHash: "h1", Status: core.StatusNotFound, CreatedAt: at(10)} // drops the Record
	r2 := core.IdempotencyRecord{Principal: "alice", OpID: "op2", RequestHash: "h2", Status: core.StatusApplied, Record: &rec2, CreatedAt: at(11)}
	r3 := core.IdempotencyRecord{Principal: "bob", OpID: "op1", RequestHash: "h3", Status: core.StatusApplied, Record: &rec, CreatedAt: at(12)}
	r4a := core.IdempotencyRecord{Principal: "alice", OpID: "op4", RequestHash: "first", Status: core.StatusApplied, Record: &rec, CreatedAt: at(13)}
	r4b := core.IdempotencyRecord{Principal: "alice", OpID: "op4", RequestHash: "second", Status: core.StatusNotFound, CreatedAt: at(14)}
	r5a := core.IdempotencyRecord{Principal: "", OpID: "op5", RequestHash: "first", Status: core.StatusNotFound, CreatedAt: at(15)}
	r5b := core.IdempotencyRecord{Principal: "", OpID: "op5", RequestHash: "second", Status: core.StatusApplied, Record: &rec2, CreatedAt: at(16)}
	if err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error {
		return b.PutIdempotentMany(ctx, []core.IdempotencyRecord{r4a, r1, r5a, r2, r3, r4b, r5b})
	}); err != nil {
		t.Fatalf("PutIdempotentMany: %v", err)
	}
	read := func(p, id string) core.IdempotencyRecord {
		t.Helper()
		var r core.IdempotencyRecord
		view(t, s, func(ctx context.Context, tx core.Tx) error {
			var err error
			r, err = tx.Idempotent(ctx, p, id)
			return err
		})
		return r
	}
	for _, want := range []core.IdempotencyRecord{r1, r2, r3, r4b, r5b} {
		sameIdem(t, read(want.Principal, want.OpID), want)
	}
	agreeIdem(t, s, "alice", []string{"op1", "op2", "op4"})
	// The replaced CreatedAt is the one PurgeIdempotent goes by.
	var purged int64
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		var err error
		purged, err = tx.PurgeIdempotent(ctx, at(11))
		return err
	})
	if purged != 1 {
		t.Fatalf("PurgeIdempotent removed %d, want 1 (alice/op1, created at 10 after the replace)", purged)
	}
	if err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error { return b.PutIdempotentMany(ctx, nil) }); err != nil {
		t.Fatalf("PutIdempotentMany of none: %v", err)
	}
	// A record without an op id: ErrInvalid, nothing written.
	fresh := core.IdempotencyRecord{Principal: "alice", OpID: "op9", RequestHash: "h9", Status: core.StatusApplied, CreatedAt: at(20)}
	repl := r2
	repl.RequestHash = "changed"
	for _, recs := range [][]core.IdempotencyRecord{
		{fresh, repl, {Principal: "alice", RequestHash: "h", Status: core.StatusApplied, CreatedAt: at(20)}},
		{{Principal: "alice", RequestHash: "h", CreatedAt: at(20)}, fresh},
	} {
		var callErr error
		err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error {
			callErr = b.PutIdempotentMany(ctx, recs)
			return callErr
		})
		wantErr(t, "PutIdempotentMany without an op id", callErr, core.ErrInvalid)
		wantErr(t, "Update of a failed PutIdempotentMany", err, core.ErrInvalid)
		var gerr error
		view(t, s, func(ctx context.Context, tx core.Tx) error { _, gerr = tx.Idempotent(ctx, "alice", "op9"); return nil })
		wantErr(t, "Idempotent after a failed PutIdempotentMany", gerr, core.ErrNotFound)
		sameIdem(t, read("alice", "op2"), r2)
	}
	// Many at once, a key repeated far apart.
	var big []core.IdempotencyRecord
	ids := bigIDs("big", bigBatch)
	for i, id := range ids {
		r := core.IdempotencyRecord{Principal: "carol", OpID: id, RequestHash: "h" + id, Status: core.StatusApplied, CreatedAt: at(int64(i))}
		if i%2 == 0 {
			r.Record = &rec
		}
		big = append(big, r)
	}
	last := big[0]
	last.RequestHash, last.Record = "final", &rec2
	big = append(big, last)
	if err := batchUpdate(t, s, func(ctx context.Context, b core.BatchTx) error { return b.PutIdempotentMany(ctx, big) }); err != nil {
		t.Fatalf("PutIdempotentMany of %d: %v", len(big), err)
	}
	m := agreeIdem(t, s, "carol", ids)
	if len(m) != len(ids) {
		t.Fatalf("%d records after PutIdempotentMany, want %d", len(m), len(ids))
	}
	sameIdem(t, m[ids[0]], last)
	for _, r := range big[1 : len(big)-1] {
		sameIdem(t, m[r.OpID], r)
	}
}
