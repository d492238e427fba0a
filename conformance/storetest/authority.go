package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// TestNextVersion: versions of a kind strictly increase — max(now,
// last+1µs) — even when the clock goes backwards, across transactions, and
// kinds are independent; versions are microseconds.
func TestNextVersion(t *testing.T, h Harness) {
	s := open(t, h)
	next := func(kind string, now time.Time) time.Time {
		var v time.Time
		update(t, s, func(ctx context.Context, tx core.Tx) error {
			var err error
			v, err = tx.NextVersion(ctx, kind, now)
			return err
		})
		return v
	}
	now := base.Add(789 * time.Nanosecond)
	v1 := next(ItemKind, now)
	if !v1.Equal(core.Micro(now)) {
		t.Fatalf("first version %v, want %v", v1, core.Micro(now))
	}
	v2 := next(ItemKind, now.Add(-time.Hour))
	if !v2.Equal(v1.Add(time.Microsecond)) {
		t.Fatalf("version with the clock an hour back = %v, want %v", v2, v1.Add(time.Microsecond))
	}
	v3 := next(ItemKind, v2)
	if !v3.Equal(v2.Add(time.Microsecond)) {
		t.Fatalf("version at the same clock = %v, want %v", v3, v2.Add(time.Microsecond))
	}
	v4 := next(ItemKind, now.Add(time.Second))
	if !v4.Equal(core.Micro(now.Add(time.Second))) {
		t.Fatalf("version with the clock ahead = %v", v4)
	}
	if w := next(NoteKind, now.Add(-time.Hour)); !w.Equal(core.Micro(now.Add(-time.Hour))) {
		t.Fatalf("another kind's first version = %v, want its own clock", w)
	}
	// Many in one transaction, clock stuck.
	var vs []time.Time
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		for range 50 {
			v, err := tx.NextVersion(ctx, ItemKind, base)
			if err != nil {
				return err
			}
			vs = append(vs, v)
		}
		return nil
	})
	prev := v4
	for _, v := range vs {
		if !v.After(prev) {
			t.Fatalf("version %v not after %v", v, prev)
		}
		prev = v
	}
	// A rolled-back transaction's versions are not recorded; later ones
	// still follow the committed ones.
	_ = s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		if _, err := tx.NextVersion(ctx, ItemKind, base.Add(24*time.Hour)); err != nil {
			return err
		}
		return errBoom
	})
	if v := next(ItemKind, base); !v.Equal(prev.Add(time.Microsecond)) {
		t.Fatalf("version after a rollback = %v, want %v", v, prev.Add(time.Microsecond))
	}
}

func changes(t *testing.T, s core.Store, q core.ChangesQuery) []core.Record {
	t.Helper()
	var out []core.Record
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		var err error
		out, err = tx.Changes(ctx, q)
		return err
	})
	return out
}

func recIDs(recs []core.Record) []string {
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

// TestChangesKeyset: the feed is ordered by (UpdatedAt, ID), includes
// tombstones, pages strictly after the cursor — exactly, at equal
// timestamps too — and honours Limit.
func TestChangesKeyset(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		tomb := mk("b", "B", "o", at(1))
		tomb.DeletedAt = at(1)
		put(t, s, mk("z", "Z", "o", at(0)), mk("c", "C", "o", at(1)), tomb, mk("a", "A", "o", at(1)),
			mk("y", "Y", "o", at(2)), mk("d", "D", "o", at(3)))
		all := changes(t, s, core.ChangesQuery{Kind: kind})
		wantIDs(t, "feed", recIDs(all), "z", "a", "b", "c", "y", "d")
		sameRecord(t, all[2], tomb)
		wantIDs(t, "after (1,a)", recIDs(changes(t, s, core.ChangesQuery{Kind: kind, After: core.Cursor{UpdatedAt: at(1), ID: "a"}})), "b", "c", "y", "d")
		wantIDs(t, "after (1,c)", recIDs(changes(t, s, core.ChangesQuery{Kind: kind, After: core.Cursor{UpdatedAt: at(1), ID: "c"}})), "y", "d")
		wantIDs(t, "after (1,bb)", recIDs(changes(t, s, core.ChangesQuery{Kind: kind, After: core.Cursor{UpdatedAt: at(1), ID: "bb"}})), "c", "y", "d")
		wantIDs(t, "after (1µs before 1,\"\")", recIDs(changes(t, s, core.ChangesQuery{Kind: kind, After: core.Cursor{UpdatedAt: at(0), ID: "zz"}})), "a", "b", "c", "y", "d")
		wantIDs(t, "after the last", recIDs(changes(t, s, core.ChangesQuery{Kind: kind, After: core.Cursor{UpdatedAt: at(3), ID: "d"}})))
		// Walk in pages of 2.
		var walked []string
		var cur core.Cursor
		for i := 0; i < 10; i++ {
			page := changes(t, s, core.ChangesQuery{Kind: kind, After: cur, Limit: 2})
			if len(page) == 0 {
				break
			}
			if len(page) > 2 {
				t.Fatalf("page of %d rows with limit 2", len(page))
			}
			walked = append(walked, recIDs(page)...)
			last := page[len(page)-1]
			cur = core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
		}
		wantIDs(t, "walk", walked, "z", "a", "b", "c", "y", "d")
	})
}

// TestChangesScope: a Filter keeps only rows whose field has one of the
// values, on typed (column) and document (JSON field) tables alike; an
// unknown typed field is ErrInvalid.
func TestChangesScope(t *testing.T, h Harness) {
	s := open(t, h)
	kinds(t, func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record) {
		put(t, s, mk("a", "A", "alice", at(1)), mk("b", "B", "bob", at(2)), mk("c", "C", "carol", at(3)),
			mk("d", "D", "alice", at(4)), mk("e", "E", "alice's", at(5)))
		f := &core.Filter{Field: "owner", Values: []string{"alice"}}
		wantIDs(t, "alice", recIDs(changes(t, s, core.ChangesQuery{Kind: kind, Filter: f})), "a", "d")
		f2 := &core.Filter{Field: "owner", Values: []string{"alice", "carol"}}
		wantIDs(t, "alice+carol after a", recIDs(changes(t, s, core.ChangesQuery{Kind: kind, Filter: f2,
			After: core.Cursor{UpdatedAt: at(1), ID: "a"}, Limit: 1})), "c")
		wantIDs(t, "quote in value", recIDs(changes(t, s, core.ChangesQuery{Kind: kind,
			Filter: &core.Filter{Field: "owner", Values: []string{"alice's"}}})), "e")
		wantIDs(t, "no values", recIDs(changes(t, s, core.ChangesQuery{Kind: kind, Filter: &core.Filter{Field: "owner"}})))
		wantIDs(t, "nobody", recIDs(changes(t, s, core.ChangesQuery{Kind: kind, Filter: &core.Filter{Field: "owner", Values: []string{"zed"}}})))
	})
	err := s.View(t.Context(), func(ctx context.Context, tx core.Tx) error {
		_, err := tx.Changes(ctx, core.ChangesQuery{Kind: ItemKind, Filter: &core.Filter{Field: "nosuch", Values: []string{"x"}}})
		return err
	})
	wantErr(t, "filter on an unknown typed field", err, core.ErrInvalid)
}

// TestIdempotency: records round trip by (principal, opID), are replaced,
// are distinct per principal, and PurgeIdempotent deletes those created
// before a time.
func TestIdempotency(t *testing.T, h Harness) {
	s := open(t, h)
	rec := item(t, "a", "A", "o", at(1))
	r1 := core.IdempotencyRecord{Principal: "alice", OpID: "op1", RequestHash: "h1", Status: core.StatusApplied, Record: &rec, CreatedAt: at(10)}
	r2 := core.IdempotencyRecord{Principal: "bob", OpID: "op1", RequestHash: "h2", Status: core.StatusNotFound, CreatedAt: at(20)}
	r3 := core.IdempotencyRecord{Principal: "", OpID: "op3", RequestHash: "h3", Status: core.StatusApplied, Record: &rec, CreatedAt: at(30)}
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		for _, r := range []core.IdempotencyRecord{r1, r2, r3} {
			if err := tx.PutIdempotent(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	read := func(p, id string) (core.IdempotencyRecord, error) {
		var r core.IdempotencyRecord
		var ierr error
		view(t, s, func(ctx context.Context, tx core.Tx) error { r, ierr = tx.Idempotent(ctx, p, id); return nil })
		return r, ierr
	}
	same := func(got, want core.IdempotencyRecord) {
		t.Helper()
		if got.Principal != want.Principal || got.OpID != want.OpID || got.RequestHash != want.RequestHash ||
			got.Status != want.Status || !got.CreatedAt.Equal(want.CreatedAt) || (got.Record == nil) != (want.Record == nil) {
			t.Fatalf("idempotency record = %+v, want %+v", got, want)
		}
		if want.Record != nil {
			sameRecord(t, *got.Record, *want.Record)
		}
	}
	for _, want := range []core.IdempotencyRecord{r1, r2, r3} {
		got, err := read(want.Principal, want.OpID)
		if err != nil {
			t.Fatalf("Idempotent(%q, %q): %v", want.Principal, want.OpID, err)
		}
		same(got, want)
	}
	_, err := read("alice", "op2")
	wantErr(t, "Idempotent missing", err, core.ErrNotFound)
	_, err = read("carol", "op1")
	wantErr(t, "Idempotent of another principal", err, core.ErrNotFound)
	r1b := r1
	r1b.RequestHash, r1b.Record = "h1b", nil
	update(t, s, func(ctx context.Context, tx core.Tx) error { return tx.PutIdempotent(ctx, r1b) })
	got, err := read("alice", "op1")
	if err != nil {
		t.Fatal(err)
	}
	same(got, r1b)
	var n int64
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		var err error
		n, err = tx.PurgeIdempotent(ctx, at(20))
		return err
	})
	if n != 1 {
		t.Fatalf("PurgeIdempotent removed %d, want 1", n)
	}
	_, err = read("alice", "op1")
	wantErr(t, "Idempotent after purge", err, core.ErrNotFound)
	for _, r := range []core.IdempotencyRecord{r2, r3} {
		if _, err := read(r.Principal, r.OpID); err != nil {
			t.Fatalf("record created at %v purged: %v", r.CreatedAt, err)
		}
	}
}
