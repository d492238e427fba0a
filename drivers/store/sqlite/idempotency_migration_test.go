package sqlite_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

// An authority file written before migration 3 keeps each idempotency
// record's answer as JSON in its record column. After the upgrade, a
// re-sent op still gets the answer kept that way, and new answers are kept
// in the new columns.
func TestIdempotencyRecordsOfSchema2StillAnswer(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "authority.db")
	tables := []core.Table{core.Documents("note")}
	op := core.Op{OpID: "k1", Kind: "note", ID: "n1", Type: core.OpUpsert, Payload: json.RawMessage(`{"title":"a"}`),
		EditedAt: time.Date(2026, 11, 1, 0, 0, 0, 1000, time.UTC)}

	// Schema 3: apply op, then move the row on.
	st, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := server.New(ctx, st, &server.Options{Tables: tables})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.Push(ctx, []core.Op{op})
	if err != nil || res[0].Status != core.StatusApplied {
		t.Fatalf("push: %v %+v", err, res)
	}
	first := *res[0].Record
	next := core.Op{OpID: "k2", Kind: "note", ID: "n1", Type: core.OpUpsert, Payload: json.RawMessage(`{"title":"b"}`),
		BaseUpdatedAt: first.UpdatedAt}
	if res, err := svc.Push(ctx, []core.Op{next}); err != nil || res[0].Status != core.StatusApplied {
		t.Fatalf("push: %v %+v", err, res)
	}
	svc.Close()

	// Turn the file into what schema 2 left: the table as migration 1 made
	// it, k1's answer as JSON in record, migration 3 not recorded.
	db := st.DB()
	var principal, hash string
	if err := db.NewRaw("SELECT principal, request_hash FROM offsync_idempotency WHERE op_id = 'k1'").Scan(ctx, &principal, &hash); err != nil {
		t.Fatal(err)
	}
	legacy := `{"kind":"note","id":"n1","updated_at":` + itoa(first.UpdatedAt.UnixMicro()) +
		`,"edited_at":` + itoa(first.EditedAt.UnixMicro()) + `,"data":{"title":"a"}}`
	for _, q := range []string{
		`DROP TABLE offsync_idempotency`,
		`CREATE TABLE offsync_idempotency (
			principal TEXT NOT NULL,
			op_id TEXT NOT NULL,
			request_hash TEXT NOT NULL,
			status INTEGER NOT NULL,
			record TEXT,
			created_at BIGINT NOT NULL,
			PRIMARY KEY (principal, op_id)
		)`,
		`CREATE INDEX offsync_idempotency_created ON offsync_idempotency (created_at)`,
		`INSERT INTO offsync_idempotency VALUES ('` + principal + `', 'k1', '` + hash + `', 1, '` + legacy + `', ` + itoa(time.Now().UnixMicro()) + `)`,
		`DELETE FROM offsync_schema WHERE version = 3`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Upgraded: the legacy answer is found, and new records work.
	st, err = sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	svc, err = server.New(ctx, st, &server.Options{Tables: tables})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	res, err = svc.Push(ctx, []core.Op{op})
	if err != nil {
		t.Fatal(err)
	}
	got := res[0].Record
	if res[0].Status != core.StatusApplied || got == nil || got.Kind != "note" || got.ID != "n1" ||
		!got.UpdatedAt.Equal(first.UpdatedAt) || !got.EditedAt.Equal(first.EditedAt) || !bytes.Equal(got.Data, first.Data) {
		t.Fatalf("replay after the upgrade answered %v %+v, want %+v", res[0].Status, got, first)
	}
	third := core.Op{OpID: "k3", Kind: "note", ID: "n2", Type: core.OpUpsert, Payload: json.RawMessage(`{"title":"c"}`)}
	a, err := svc.Push(ctx, []core.Op{third})
	if err != nil || a[0].Status != core.StatusApplied {
		t.Fatalf("push after the upgrade: %v %+v", err, a)
	}
	b, err := svc.Push(ctx, []core.Op{third})
	if err != nil || b[0].Status != core.StatusApplied || !b[0].Record.UpdatedAt.Equal(a[0].Record.UpdatedAt) ||
		!bytes.Equal(b[0].Record.Data, a[0].Record.Data) {
		t.Fatalf("replay of a record kept after the upgrade: %v %+v, first %+v", err, b, a)
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }
