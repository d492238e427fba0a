package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// Harness makes the stores the suite tests.
type Harness interface {
	// NewStore returns a new, empty store; the harness closes it when the
	// test ends (t.Cleanup). The suite calls Register itself.
	NewStore(t *testing.T) core.Store
}

// Item is the suite's typed model (a bun store names its table "items"). Note
// is a local-only column: a pull or a Put never overwrites it.
type Item struct {
	ID    string `bun:"id,pk" json:"id"`
	Title string `json:"title"`
	Owner string `json:"owner"`
	Count int64  `json:"count"`
	Done  bool   `json:"done"`
	Note  string `json:"-" offsync:"local"`
	core.SyncColumns
}

// The suite's kinds.
const (
	ItemKind = "st_item"
	NoteKind = "st_note"
)

// Items is the suite's typed table; Notes its document table.
var (
	Items = core.NewTable[Item](ItemKind)
	Notes = core.Documents(NoteKind)
)

// Tables returns the suite's tables, registered on every store.
func Tables() []core.Table { return []core.Table{Items, Notes} }

// Run runs every test of the suite, each as a subtest.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"RegisterRejectsBadModels", TestRegisterRejectsBadModels},
		{"RegisterAgain", TestRegisterAgain},
		{"UnknownKind", TestUnknownKind},
		{"PutGetRoundTrip", TestPutGetRoundTrip},
		{"PutKeepsLocalColumns", TestPutKeepsLocalColumns},
		{"BadData", TestBadData},
		{"List", TestList},
		{"RemoveAndClearKind", TestRemoveAndClearKind},
		{"ApplyPage", TestApplyPage},
		{"ApplyPageKeepsPendingRows", TestApplyPageKeepsPendingRows},
		{"ApplyPageKeepsLocalColumns", TestApplyPageKeepsLocalColumns},
		{"ApplyPageLarge", TestApplyPageLarge},
		{"OutboxOrder", TestOutboxOrder},
		{"OpRoundTrip", TestOpRoundTrip},
		{"UpdateOpKeepsPlace", TestUpdateOpKeepsPlace},
		{"CountOps", TestCountOps},
		{"Cursors", TestCursors},
		{"ConflictInbox", TestConflictInbox},
		{"Meta", TestMeta},
		{"UpdateRollback", TestUpdateRollback},
		{"NestedUpdateJoins", TestNestedUpdateJoins},
		{"Savepoint", TestSavepoint},
		{"NextVersion", TestNextVersion},
		{"ChangesKeyset", TestChangesKeyset},
		{"ChangesScope", TestChangesScope},
		{"Idempotency", TestIdempotency},
		{"BatchGetMany", TestBatchGetMany},
		{"BatchPutMany", TestBatchPutMany},
		{"BatchPutManyLarge", TestBatchPutManyLarge},
		{"BatchPutManyBadData", TestBatchPutManyBadData},
		{"BatchSettleMany", TestBatchSettleMany},
		{"BatchSettleManyLarge", TestBatchSettleManyLarge},
		{"BatchPendingIDs", TestBatchPendingIDs},
		{"BatchDeleteOps", TestBatchDeleteOps},
		{"BatchSetOpState", TestBatchSetOpState},
		{"BatchIdempotentMany", TestBatchIdempotentMany},
		{"BatchPutIdempotentMany", TestBatchPutIdempotentMany},
		{"CollectTombstones", TestCollectTombstones},
		{"CollectResync", TestCollectResync},
		{"CollectWhilePushing", TestCollectWhilePushing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// base is a time with microseconds, the precision every store must keep.
var base = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func at(us int64) time.Time { return base.Add(time.Duration(us) * time.Microsecond) }

// open makes a store with the suite's tables registered.
func open(t *testing.T, h Harness) core.Store {
	t.Helper()
	s := h.NewStore(t)
	if err := s.Register(t.Context(), Tables()...); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return s
}

func update(t *testing.T, s core.Store, fn func(ctx context.Context, tx core.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s core.Store, fn func(ctx context.Context, tx core.Tx) error) {
	t.Helper()
	if err := s.View(t.Context(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func data(t testing.TB, m map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// item is a record of the typed kind with every business field set.
func item(t testing.TB, id, title, owner string, updated time.Time) core.Record {
	return core.Record{Kind: ItemKind, ID: id, UpdatedAt: updated,
		Data: data(t, map[string]any{"title": title, "owner": owner, "count": 7, "done": false})}
}

// note is a record of the document kind.
func note(t testing.TB, id, title, owner string, updated time.Time) core.Record {
	return core.Record{Kind: NoteKind, ID: id, UpdatedAt: updated,
		Data: data(t, map[string]any{"title": title, "owner": owner, "tags": []any{"a", "b"}})}
}

// kinds runs fn once per suite kind with its record constructor.
func kinds(t *testing.T, fn func(t *testing.T, kind string, mk func(id, title, owner string, updated time.Time) core.Record)) {
	t.Run("typed", func(t *testing.T) {
		fn(t, ItemKind, func(id, title, owner string, u time.Time) core.Record { return item(t, id, title, owner, u) })
	})
	t.Run("document", func(t *testing.T) {
		fn(t, NoteKind, func(id, title, owner string, u time.Time) core.Record { return note(t, id, title, owner, u) })
	})
}

func fields(t testing.TB, r core.Record) map[string]any {
	t.Helper()
	var m map[string]any
	if len(r.Data) == 0 {
		return map[string]any{}
	}
	if err := json.Unmarshal(r.Data, &m); err != nil {
		t.Fatalf("record %s/%s data %q: %v", r.Kind, r.ID, r.Data, err)
	}
	return m
}

// sameRecord fails unless got and want are the same record: times compared
// as instants to the microsecond, data as JSON values.
func sameRecord(t testing.TB, got, want core.Record) {
	t.Helper()
	if got.Kind != want.Kind || got.ID != want.ID {
		t.Fatalf("record %s/%s, want %s/%s", got.Kind, got.ID, want.Kind, want.ID)
	}
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{{"UpdatedAt", got.UpdatedAt, want.UpdatedAt}, {"DeletedAt", got.DeletedAt, want.DeletedAt}, {"EditedAt", got.EditedAt, want.EditedAt}} {
		if !c.got.Equal(c.want) {
			t.Fatalf("%s/%s %s = %v, want %v", got.Kind, got.ID, c.name, c.got, c.want)
		}
	}
	if g, w := fields(t, got), fields(t, want); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s/%s data = %v, want %v", got.Kind, got.ID, g, w)
	}
}

func get(t testing.TB, s core.Store, kind, id string) (core.Record, error) {
	t.Helper()
	var rec core.Record
	var gerr error
	err := s.View(context.Background(), func(ctx context.Context, tx core.Tx) error {
		rec, gerr = tx.Get(ctx, kind, id)
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
	return rec, gerr
}

func mustGet(t testing.TB, s core.Store, kind, id string) core.Record {
	t.Helper()
	rec, err := get(t, s, kind, id)
	if err != nil {
		t.Fatalf("Get %s/%s: %v", kind, id, err)
	}
	return rec
}

func put(t *testing.T, s core.Store, recs ...core.Record) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		for _, r := range recs {
			if err := tx.Put(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

func list(t *testing.T, s core.Store, kind string, o core.ListOptions) []string {
	t.Helper()
	var ids []string
	view(t, s, func(ctx context.Context, tx core.Tx) error {
		recs, err := tx.List(ctx, kind, o)
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		return err
	})
	return ids
}

func wantIDs(t testing.TB, what string, got []string, want ...string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: ids %q, want %q", what, got, want)
	}
}

func wantErr(t testing.TB, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

func enqueue(t *testing.T, s core.Store, ops ...*core.Op) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx core.Tx) error {
		for _, op := range ops {
			if err := tx.Enqueue(ctx, op); err != nil {
				return err
			}
		}
		return nil
	})
}

func upsertOp(opID, kind, id string) *core.Op {
	return &core.Op{OpID: opID, Kind: kind, ID: id, Type: core.OpUpsert, Payload: json.RawMessage(`{"title":"x"}`),
		EnqueuedAt: base, State: core.StatePending, SchemaVersion: 1}
}
