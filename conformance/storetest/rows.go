package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

type noSyncColumns struct {
	ID    string `bun:"id,pk" json:"id"`
	Title string `json:"title"`
}

type intKey struct {
	ID    int64  `bun:"id,pk" json:"id"`
	Title string `json:"title"`
	core.SyncColumns
}

type reservedName struct {
	ID     string `bun:"id,pk" json:"id"`
	Secret string `json:"_secret"`
	core.SyncColumns
}

type reservedUpdatedAt struct {
	ID      string `bun:"id,pk" json:"id"`
	Updated string `bun:"updated" json:"updatedAt"`
	core.SyncColumns
}

type goodExtra struct {
	ID   string `bun:"id,pk" json:"id"`
	Name string `json:"name"`
	core.SyncColumns
}

// TestRegisterRejectsBadModels: a model that cannot be synced is an error at
// registration, and a call with one bad table registers none of its tables.
func TestRegisterRejectsBadModels(t *testing.T, h Harness) {
	bad := []struct {
		name  string
		table core.Table
		want  error
	}{
		{"no SyncColumns", core.NewTable[noSyncColumns]("st_nosync"), core.ErrInvalid},
		{"non-string primary key", core.NewTable[intKey]("st_intkey"), core.ErrInvalid},
		{"field starting with _", core.NewTable[reservedName]("st_reserved"), core.ErrReservedField},
		{"field named updatedAt", core.NewTable[reservedUpdatedAt]("st_reserved2"), core.ErrReservedField},
		{"bad kind", core.Documents("Bad-Kind"), core.ErrInvalid},
		{"reserved kind", core.NewTable[goodExtra]("events"), core.ErrInvalid},
		{"empty kind", core.Documents(""), core.ErrInvalid},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			s := h.NewStore(t)
			good := core.Documents("st_good")
			typed := core.NewTable[goodExtra]("st_extra")
			err := s.Register(t.Context(), good, typed, c.table)
			wantErr(t, "Register", err, c.want)
			for _, k := range []string{"st_good", "st_extra", c.table.Kind()} {
				_, err := get(t, s, k, "x")
				wantErr(t, "Get on a kind of a failed Register", err, core.ErrUnknownKind)
			}
			if err := s.Register(t.Context(), Tables()...); err != nil {
				t.Fatalf("Register after a failed one: %v", err)
			}
		})
	}
}

// TestRegisterAgain: Register may be called again with more tables, and
// with tables it already has; rows survive.
func TestRegisterAgain(t *testing.T, h Harness) {
	s := open(t, h)
	put(t, s, item(t, "a", "A", "alice", at(1)))
	extra := core.NewTable[goodExtra]("st_extra")
	if err := s.Register(t.Context(), extra); err != nil {
		t.Fatalf("Register more: %v", err)
	}
	if err := s.Register(t.Context(), Tables()...); err != nil {
		t.Fatalf("Register the same tables again: %v", err)
	}
	mustGet(t, s, ItemKind, "a")
	put(t, s, core.Record{Kind: "st_extra", ID: "e", UpdatedAt: at(2), Data: json.RawMessage(`{"name":"n"}`)})
	sameRecord(t, mustGet(t, s, "st_extra", "e"), core.Record{Kind: "st_extra", ID: "e", UpdatedAt: at(2), Data: json.RawMessage(`{"name":"n"}`)})
}

// TestUnknownKind: every call naming an unregistered kind fails with
// ErrUnknownKind.
func TestUnknownKind(t *testing.T, h Harness) {
	s := open(t, h)
	const k = "st_nope"
	calls := map[string]func(ctx context.Context, tx core.Tx) error{
		"Get": func(ctx context.Context, tx core.Tx) error { _, err := tx.Get(ctx, k, "a"); return err },
		"Put": func(ctx context.Context, tx core.Tx) error {
			return tx.Put(ctx, core.Record{Kind: k, ID: "a", Data: json.RawMessage(`{}`)})
		},
		"List": func(ctx context.Context, tx core.Tx) error { _, err := tx.List(ctx, k, core.ListOptions{}); return err },
		"ApplyPage": func(ctx context.Context, tx core.Tx) error {
			_, err := tx.ApplyPage(ctx, k, []core.Record{{Kind: k, ID: "a", UpdatedAt: base, Data: json.RawMessage(`{}`)}})
			return err
		},
		"Changes": func(ctx context.Context, tx core.Tx) error {
			_, err := tx.Changes(ctx, core.ChangesQuery{Kind: k})
			return err
		},
		"NextVersion":      func(ctx context.Context, tx core.Tx) error { _, err := tx.NextVersion(ctx, k, base); return err },
		"Remove":           func(ctx context.Context, tx core.Tx) error { return tx.Remove(ctx, k, "a") },
		"MarkDeletedLocal": func(ctx context.Context, tx core.Tx) error { return tx.MarkDeletedLocal(ctx, k, "a", base) },
		"ClearKind":        func(ctx context.Context, tx core.Tx) error { _, err := tx.ClearKind(ctx, k); return err },
		"Enqueue":          func(ctx context.Context, tx core.Tx) error { return tx.Enqueue(ctx, upsertOp("op", k, "a")) },
	}
	for name, fn := range calls {
		err := s.Update(t.Context(), fn)
		wantErr(t, name, err, core.ErrUnknownKind)
	}
}

// TestPutGetRoundTrip: Put then Get returns the record as written, times to
// the microsecond, tombstones included; a missing row is ErrNotFound.
func TestPutGetRoundTrip(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		live := mk("a", "hello \"world\" ✓", "alice", at(1))
		live.EditedAt = at(-999999)
		tomb := mk("b", "gone", "bob", at(2))
		tomb.DeletedAt = at(2)
		old := mk("c", "old", "carol", time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC))
		put(t, s, live, tomb, old)
		sameRecord(t, mustGet(t, s, kind, "a"), live)
		sameRecord(t, mustGet(t, s, kind, "b"), tomb)
		sameRecord(t, mustGet(t, s, kind, "c"), old)
		if got := mustGet(t, s, kind, "a"); got.UpdatedAt.Location() != time.UTC {
			t.Errorf("UpdatedAt location %v, want UTC", got.UpdatedAt.Location())
		}
		// Replace.
		live2 := mk("a", "second", "alice", at(10))
		put(t, s, live2)
		sameRecord(t, mustGet(t, s, kind, "a"), live2)
		_, err := get(t, s, kind, "missing")
		wantErr(t, "Get missing", err, core.ErrNotFound)
		// Put without Kind in the record is refused as unknown (no kind "").
		err = s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
			return tx.Put(ctx, core.Record{ID: "x", Data: json.RawMessage(`{}`)})
		})
		if err == nil {
			t.Fatal("Put of a record without a kind succeeded")
		}
	})
}

// TestPutKeepsLocalColumns: Put never overwrites local-only columns, e.g. the
// local deletion mark.
func TestPutKeepsLocalColumns(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		put(t, s, mk("a", "A", "alice", at(1)), mk("b", "B", "bob", at(1)))
		update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.MarkDeletedLocal(ctx, kind, "a", at(5)) })
		wantIDs(t, "List after MarkDeletedLocal", list(t, s, kind, core.ListOptions{}), "b")
		put(t, s, mk("a", "A2", "alice", at(2)))
		wantIDs(t, "List after Put over a locally deleted row", list(t, s, kind, core.ListOptions{}), "b")
		wantIDs(t, "List IncludeDeleted", list(t, s, kind, core.ListOptions{IncludeDeleted: true}), "a", "b")
		sameRecord(t, mustGet(t, s, kind, "a"), mk("a", "A2", "alice", at(2)))
		err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error { return tx.MarkDeletedLocal(ctx, kind, "zz", at(5)) })
		wantErr(t, "MarkDeletedLocal missing row", err, core.ErrNotFound)
	})
}

// TestBadData: data that is not a JSON object, a record without an id, or a
// record of another kind is ErrInvalid, from Put and ApplyPage, and nothing
// is written.
func TestBadData(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		for _, d := range []string{`[1,2]`, `"text"`, `42`, `not json`, `{"title":`} {
			rec := core.Record{Kind: kind, ID: "bad", UpdatedAt: base, Data: json.RawMessage(d)}
			err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error { return tx.Put(ctx, rec) })
			wantErr(t, fmt.Sprintf("Put data %s", d), err, core.ErrInvalid)
			err = s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
				_, err := tx.ApplyPage(ctx, kind, []core.Record{mk("good", "g", "o", base), rec})
				return err
			})
			wantErr(t, fmt.Sprintf("ApplyPage data %s", d), err, core.ErrInvalid)
		}
		noID := mk("", "t", "o", base)
		err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error { return tx.Put(ctx, noID) })
		wantErr(t, "Put without id", err, core.ErrInvalid)
		err = s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
			_, err := tx.ApplyPage(ctx, kind, []core.Record{noID})
			return err
		})
		wantErr(t, "ApplyPage without id", err, core.ErrInvalid)
		other := mk("x", "t", "o", base)
		other.Kind = "st_other"
		err = s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
			_, err := tx.ApplyPage(ctx, kind, []core.Record{other})
			return err
		})
		wantErr(t, "ApplyPage of another kind's record", err, core.ErrInvalid)
		wantIDs(t, "rows after bad writes", list(t, s, kind, core.ListOptions{IncludeDeleted: true}))
	})
}

// TestList: List orders by id, pages with AfterID and Limit, and hides
// tombstones and locally deleted rows unless IncludeDeleted.
func TestList(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		tomb := mk("d", "D", "o", at(4))
		tomb.DeletedAt = at(4)
		put(t, s, mk("c", "C", "o", at(1)), mk("a", "A", "o", at(2)), mk("e", "E", "o", at(3)), tomb, mk("b", "B", "o", at(5)))
		update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.MarkDeletedLocal(ctx, kind, "e", at(6)) })
		wantIDs(t, "List", list(t, s, kind, core.ListOptions{}), "a", "b", "c")
		wantIDs(t, "List all", list(t, s, kind, core.ListOptions{IncludeDeleted: true}), "a", "b", "c", "d", "e")
		wantIDs(t, "List after b", list(t, s, kind, core.ListOptions{AfterID: "b", IncludeDeleted: true}), "c", "d", "e")
		wantIDs(t, "List limit 2", list(t, s, kind, core.ListOptions{Limit: 2}), "a", "b")
		wantIDs(t, "List after a limit 2", list(t, s, kind, core.ListOptions{AfterID: "a", Limit: 2, IncludeDeleted: true}), "b", "c")
	})
}

// TestRemoveAndClearKind: Remove deletes a row (a missing one is no error);
// ClearKind deletes the rows of a kind that have no op in the outbox.
func TestRemoveAndClearKind(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		put(t, s, mk("a", "A", "o", at(1)), mk("b", "B", "o", at(1)), mk("c", "C", "o", at(1)), mk("d", "D", "o", at(1)))
		update(t, s, func(ctx context.Context, tx core.Tx) error {
			if err := tx.Remove(ctx, kind, "a"); err != nil {
				return err
			}
			return tx.Remove(ctx, kind, "missing")
		})
		_, err := get(t, s, kind, "a")
		wantErr(t, "Get removed", err, core.ErrNotFound)
		enqueue(t, s, upsertOp("op-"+kind, kind, "c"))
		var n int
		update(t, s, func(ctx context.Context, tx core.Tx) error {
			var err error
			n, err = tx.ClearKind(ctx, kind)
			return err
		})
		if n != 2 {
			t.Errorf("ClearKind removed %d rows, want 2", n)
		}
		wantIDs(t, "after ClearKind", list(t, s, kind, core.ListOptions{IncludeDeleted: true}), "c")
	})
	// The other kind's rows are untouched by ClearKind of one kind.
	wantIDs(t, "typed rows after document ClearKind", list(t, s, ItemKind, core.ListOptions{}), "c")
}

func apply(t *testing.T, s core.Store, kind string, recs ...core.Record) core.ApplyResult {
	t.Helper()
	var res core.ApplyResult
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		var err error
		res, err = tx.ApplyPage(ctx, kind, recs)
		return err
	})
	return res
}

// TestApplyPage: pulled records are upserted, tombstones stored, and the
// result counts them; a record given twice ends as the later one.
func TestApplyPage(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		a, b := mk("a", "A", "o", at(1)), mk("b", "B", "o", at(2))
		put(t, s, mk("b", "old", "o", at(0)))
		tomb := mk("c", "C", "o", at(3))
		tomb.DeletedAt = at(3)
		res := apply(t, s, kind, a, b, tomb)
		if res != (core.ApplyResult{Upserts: 2, Deletes: 1}) {
			t.Fatalf("ApplyPage = %+v, want 2 upserts, 1 delete", res)
		}
		sameRecord(t, mustGet(t, s, kind, "a"), a)
		sameRecord(t, mustGet(t, s, kind, "b"), b)
		sameRecord(t, mustGet(t, s, kind, "c"), tomb)
		wantIDs(t, "List", list(t, s, kind, core.ListOptions{}), "a", "b")
		// Twice in one page: the later wins.
		first, second := mk("d", "first", "o", at(4)), mk("d", "second", "o", at(5))
		apply(t, s, kind, first, second)
		sameRecord(t, mustGet(t, s, kind, "d"), second)
		// An empty page is nothing.
		if res := apply(t, s, kind); res != (core.ApplyResult{}) {
			t.Fatalf("empty ApplyPage = %+v", res)
		}
	})
}

// TestApplyPageKeepsPendingRows: a record whose row has any op in the
// outbox, whatever its state, is left alone and counted as Kept
// (guarantee G3, docs/guarantees.md); once the ops are gone the next pull applies.
func TestApplyPageKeepsPendingRows(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		locals := []core.Record{mk("p", "local p", "o", at(1)), mk("f", "local f", "o", at(1)),
			mk("d", "local d", "o", at(1)), mk("x", "local x", "o", at(1))}
		put(t, s, locals...)
		states := map[string]core.OpState{"p": core.StatePending, "f": core.StateInFlight, "d": core.StateDeferred, "x": core.StateDead}
		for id, st := range states {
			op := upsertOp("op-"+kind+"-"+id, kind, id)
			op.State = st
			enqueue(t, s, op)
		}
		// An op of the same id in another kind does not protect this kind's row.
		other := ItemKind
		if kind == ItemKind {
			other = NoteKind
		}
		free := "free-" + kind
		enqueue(t, s, upsertOp("op-other-"+kind, other, free))
		var page []core.Record
		for _, id := range []string{"p", "f", "d", "x", free} {
			page = append(page, mk(id, "server "+id, "o", at(9)))
		}
		res := apply(t, s, kind, page...)
		if res != (core.ApplyResult{Upserts: 1, Kept: 4}) {
			t.Fatalf("ApplyPage = %+v, want 1 upsert and 4 kept", res)
		}
		for _, l := range locals {
			sameRecord(t, mustGet(t, s, kind, l.ID), l)
		}
		sameRecord(t, mustGet(t, s, kind, free), page[4])
		update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.DeleteOp(ctx, "op-"+kind+"-p") })
		res = apply(t, s, kind, page[0])
		if res != (core.ApplyResult{Upserts: 1}) {
			t.Fatalf("ApplyPage after the op left = %+v, want 1 upsert", res)
		}
		sameRecord(t, mustGet(t, s, kind, "p"), page[0])
	})
}

// TestApplyPageKeepsLocalColumns: a pull never overwrites local-only
// columns (guarantee G10, docs/guarantees.md): a locally deleted row stays hidden.
func TestApplyPageKeepsLocalColumns(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		put(t, s, mk("a", "A", "o", at(1)))
		update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.MarkDeletedLocal(ctx, kind, "a", at(2)) })
		srv := mk("a", "server", "o", at(3))
		if res := apply(t, s, kind, srv); res.Upserts != 1 {
			t.Fatalf("ApplyPage = %+v, want 1 upsert", res)
		}
		sameRecord(t, mustGet(t, s, kind, "a"), srv)
		wantIDs(t, "List after pull over a locally deleted row", list(t, s, kind, core.ListOptions{}))
	})
}

// TestApplyPageLarge: a page larger than any statement chunk, with pending
// rows spread through it, is applied whole.
func TestApplyPageLarge(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		const n = 2500
		recs := make([]core.Record, n)
		for i := range recs {
			recs[i] = mk(fmt.Sprintf("r%05d", i), fmt.Sprintf("title %d", i), "o", at(int64(i)))
			if i%10 == 0 {
				recs[i].DeletedAt = at(int64(i))
			}
		}
		var ops []*core.Op
		for i := 7; i < n; i += 600 { // never a tombstone (i%10 != 0)
			ops = append(ops, upsertOp(fmt.Sprintf("op-%s-%d", kind, i), kind, recs[i].ID))
		}
		enqueue(t, s, ops...)
		res := apply(t, s, kind, recs...)
		if res.Kept != len(ops) || res.Deletes != n/10 || res.Upserts != n-n/10-len(ops) {
			t.Fatalf("ApplyPage = %+v, want %d kept, %d deletes", res, len(ops), n/10)
		}
		all := list(t, s, kind, core.ListOptions{IncludeDeleted: true})
		if len(all) != n-len(ops) {
			t.Fatalf("%d rows, want %d", len(all), n-len(ops))
		}
		sameRecord(t, mustGet(t, s, kind, "r02499"), recs[2499])
	})
}
