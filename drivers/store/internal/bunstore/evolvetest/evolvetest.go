package evolvetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun"
)

// Opener opens a store on one database, every call the same database, with
// log as the store's logger. The store is closed by the test's cleanup.
type Opener func(t *testing.T, log *slog.Logger) (core.Store, *bun.DB)

// Run runs the schema evolution tests. newDB makes a new, empty database for
// each test and returns how to open stores on it.
func Run(t *testing.T, newDB func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"AddsNullableAndDefaultedColumns", addsColumns},
		{"RefusesTypeChange", refusesTypeChange},
		{"RefusesNewNotNullWithoutDefault", refusesNotNullWithoutDefault},
		{"RefusesNewUniqueColumn", refusesUnique},
		{"DroppedNullableColumnIsKept", keepsDroppedColumn},
		{"RefusesDroppedNotNullColumn", refusesDroppedNotNull},
		{"RefusesNullableFieldOnNotNullColumn", refusesNullableOnNotNull},
		{"RefusesRenamedKey", refusesRenamedKey},
		{"RefusalChangesNothing", refusalChangesNothing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newDB(t)) })
	}
}

// The models: one table, "todos", as an application's versions see it.

type todoV1 struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Owner         string `bun:",notnull" json:"owner"`
	Memo          string `json:"memo"`
	core.SyncColumns
}

// todoV2 adds a nullable field, a pointer field and a NOT NULL field with a
// default.
type todoV2 struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string  `bun:"id,pk" json:"id"`
	Title         string  `json:"title"`
	Owner         string  `bun:",notnull" json:"owner"`
	Memo          string  `json:"memo"`
	Done          bool    `json:"done"`
	Priority      int     `bun:",notnull,default:3" json:"priority"`
	Note          *string `json:"note"`
	core.SyncColumns
}

type todoTitleInt struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk" json:"id"`
	Title         int64  `json:"title"`
	Owner         string `bun:",notnull" json:"owner"`
	Memo          string `json:"memo"`
	core.SyncColumns
}

type todoNotNullNoDefault struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Owner         string `bun:",notnull" json:"owner"`
	Memo          string `json:"memo"`
	Rank          int    `bun:",notnull" json:"rank"`
	core.SyncColumns
}

type todoUnique struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Owner         string `bun:",notnull" json:"owner"`
	Memo          string `json:"memo"`
	Slug          string `bun:",unique" json:"slug"`
	core.SyncColumns
}

// todoNoMemo dropped the nullable memo field.
type todoNoMemo struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Owner         string `bun:",notnull" json:"owner"`
	core.SyncColumns
}

// todoNoOwner dropped the NOT NULL owner field.
type todoNoOwner struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Memo          string `json:"memo"`
	core.SyncColumns
}

// todoOwnerPtr made owner a nullable pointer.
type todoOwnerPtr struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string  `bun:"id,pk" json:"id"`
	Title         string  `json:"title"`
	Owner         *string `json:"owner"`
	Memo          string  `json:"memo"`
	core.SyncColumns
}

type project struct {
	bun.BaseModel `bun:"table:projects"`
	ID            string `bun:"id,pk" json:"id"`
	Name          string `json:"name"`
	core.SyncColumns
}

type projectV2 struct {
	bun.BaseModel `bun:"table:projects"`
	ID            string `bun:"id,pk" json:"id"`
	Name          string `json:"name"`
	Color         string `json:"color"`
	core.SyncColumns
}

// logs collects a store's log lines.
type logs struct{ buf bytes.Buffer }

func (l *logs) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(&l.buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logs) lines() []string {
	return strings.Split(strings.TrimSpace(l.buf.String()), "\n")
}

// register opens a store, registers tables and returns the store, its
// database and Register's error.
func register(t *testing.T, open Opener, log *slog.Logger, tables ...core.Table) (core.Store, *bun.DB, error) {
	t.Helper()
	s, db := open(t, log)
	return s, db, s.Register(t.Context(), tables...)
}

func mustRegister(t *testing.T, open Opener, log *slog.Logger, tables ...core.Table) (core.Store, *bun.DB) {
	t.Helper()
	s, db, err := register(t, open, log, tables...)
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return s, db
}

var v1 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func put(t *testing.T, s core.Store, rec core.Record) {
	t.Helper()
	if err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error { return tx.Put(ctx, rec) }); err != nil {
		t.Fatalf("put %s: %v", rec.ID, err)
	}
}

func get(t *testing.T, s core.Store, kind, id string) map[string]any {
	t.Helper()
	var rec core.Record
	err := s.View(t.Context(), func(ctx context.Context, tx core.Tx) error {
		var err error
		rec, err = tx.Get(ctx, kind, id)
		return err
	})
	if err != nil {
		t.Fatalf("get %s/%s: %v", kind, id, err)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// wantRefusal checks that err is a schema change refusal naming the table,
// the column and where to read what to do.
func wantRefusal(t *testing.T, err error, column string, words ...string) {
	t.Helper()
	if !errors.Is(err, core.ErrSchemaChange) {
		t.Fatalf("Register: %v, want core.ErrSchemaChange", err)
	}
	msg := err.Error()
	t.Logf("refused: %s", msg)
	for _, w := range append([]string{"table todos", "column " + column, "docs/migrations.md"}, words...) {
		if !strings.Contains(msg, w) {
			t.Errorf("the refusal %q does not say %q", msg, w)
		}
	}
}

// seedV1 registers v1 on a new database and writes one row.
func seedV1(t *testing.T, open Opener) {
	t.Helper()
	s, _ := mustRegister(t, open, nil, core.NewTable[todoV1]("todo"))
	put(t, s, core.Record{Kind: "todo", ID: "a", UpdatedAt: v1,
		Data: json.RawMessage(`{"title":"milk","owner":"ann","memo":"2 l"}`)})
}

func addsColumns(t *testing.T, open Opener) {
	seedV1(t, open)
	var l logs
	s, _ := mustRegister(t, open, l.logger(), core.NewTable[todoV2]("todo"))
	added := map[string]bool{}
	for _, line := range l.lines() {
		if strings.Contains(line, "added a column") {
			for _, c := range []string{"done", "priority", "note"} {
				if strings.Contains(line, "column="+c+" ") && strings.Contains(line, "table=todos") {
					added[c] = true
				}
			}
		}
	}
	if len(added) != 3 {
		t.Errorf("log lines %q: want one added-column line each for done, priority and note", l.lines())
	}
	// The old row reads with the new fields' defaults; a new row keeps them.
	got := get(t, s, "todo", "a")
	if got["title"] != "milk" || got["done"] != false || got["priority"] != float64(3) || got["note"] != nil {
		t.Errorf("old row under v2: %v", got)
	}
	put(t, s, core.Record{Kind: "todo", ID: "b", UpdatedAt: v1.Add(time.Second),
		Data: json.RawMessage(`{"title":"eggs","owner":"bob","memo":"","done":true,"priority":1,"note":"brown"}`)})
	got = get(t, s, "todo", "b")
	if got["done"] != true || got["priority"] != float64(1) || got["note"] != "brown" {
		t.Errorf("new row under v2: %v", got)
	}
	// Opening again changes nothing and says nothing.
	var again logs
	mustRegister(t, open, again.logger(), core.NewTable[todoV2]("todo"))
	if strings.TrimSpace(again.buf.String()) != "" {
		t.Errorf("second Register logged %q", again.buf.String())
	}
}

func refusesTypeChange(t *testing.T, open Opener) {
	seedV1(t, open)
	_, _, err := register(t, open, nil, core.NewTable[todoTitleInt]("todo"))
	wantRefusal(t, err, "title", "type")
}

func refusesNotNullWithoutDefault(t *testing.T, open Opener) {
	seedV1(t, open)
	_, _, err := register(t, open, nil, core.NewTable[todoNotNullNoDefault]("todo"))
	wantRefusal(t, err, "rank", "NOT NULL", "default")
}

func refusesUnique(t *testing.T, open Opener) {
	seedV1(t, open)
	_, _, err := register(t, open, nil, core.NewTable[todoUnique]("todo"))
	wantRefusal(t, err, "slug", "UNIQUE")
}

func keepsDroppedColumn(t *testing.T, open Opener) {
	seedV1(t, open)
	var l logs
	s, db := mustRegister(t, open, l.logger(), core.NewTable[todoNoMemo]("todo"))
	if !strings.Contains(l.buf.String(), "no longer in the model") || !strings.Contains(l.buf.String(), "column=memo") {
		t.Errorf("log %q: want a line about the kept column memo", l.buf.String())
	}
	var memo string
	if err := db.NewRaw("SELECT memo FROM todos WHERE id = 'a'").Scan(t.Context(), &memo); err != nil || memo != "2 l" {
		t.Errorf("the kept column lost its data: %q, %v", memo, err)
	}
	// Writes under the new model still work (the column takes NULL).
	put(t, s, core.Record{Kind: "todo", ID: "c", UpdatedAt: v1.Add(time.Second),
		Data: json.RawMessage(`{"title":"tea","owner":"cy"}`)})
}

func refusesDroppedNotNull(t *testing.T, open Opener) {
	seedV1(t, open)
	_, _, err := register(t, open, nil, core.NewTable[todoNoOwner]("todo"))
	wantRefusal(t, err, "owner", "NOT NULL", "no longer in the model")
}

func refusesNullableOnNotNull(t *testing.T, open Opener) {
	seedV1(t, open)
	_, _, err := register(t, open, nil, core.NewTable[todoOwnerPtr]("todo"))
	wantRefusal(t, err, "owner", "NOT NULL", "Owner")
}

func refusesRenamedKey(t *testing.T, open Opener) {
	s, db := open(t, nil)
	// A table made before, keyed by another column.
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE todos (key VARCHAR PRIMARY KEY, id VARCHAR,
		title VARCHAR, owner VARCHAR NOT NULL, memo VARCHAR, updated_at BIGINT, deleted_at BIGINT,
		edited_at BIGINT, deleted_at_local BIGINT)`); err != nil {
		t.Fatal(err)
	}
	err := s.Register(t.Context(), core.NewTable[todoV1]("todo"))
	wantRefusal(t, err, "id", "primary key", "(key)")
}

// A Register of two tables whose second change is refused leaves the first
// table as it was: the checks and the changes are one transaction.
func refusalChangesNothing(t *testing.T, open Opener) {
	s, _ := mustRegister(t, open, nil, core.NewTable[project]("project"), core.NewTable[todoV1]("todo"))
	put(t, s, core.Record{Kind: "project", ID: "p", UpdatedAt: v1, Data: json.RawMessage(`{"name":"home"}`)})
	_, _, err := register(t, open, nil, core.NewTable[projectV2]("project"), core.NewTable[todoTitleInt]("todo"))
	wantRefusal(t, err, "title")
	_, db := open(t, nil)
	var n int
	if err := db.NewRaw("SELECT COUNT(*) FROM projects").Scan(t.Context(), &n); err != nil || n != 1 {
		t.Fatalf("projects: %d rows, %v", n, err)
	}
	var color []string
	if err := db.NewRaw("SELECT color FROM projects").Scan(t.Context(), &color); err == nil {
		t.Errorf("the refused Register added the column color to projects")
	}
	// The database still opens with the old models.
	mustRegister(t, open, nil, core.NewTable[project]("project"), core.NewTable[todoV1]("todo"))
}
