package sqlite_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

// Version 1 of an application's model.
type todoV1 struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	core.SyncColumns
}

// Version 2 added a field. Its edits are written under schema version 2;
// queued version 1 edits are upgraded by the hook before they are pushed.
type todoV2 struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Priority      int    `json:"priority"`
	core.SyncColumns
}

// upgradeV1 gives the edits queued by version 1 the priority version 2
// means by "not set".
func upgradeV1(_ context.Context, from int, payload json.RawMessage) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, err
	}
	if _, ok := m["priority"]; !ok && from < 2 {
		m["priority"] = 2
	}
	return json.Marshal(m)
}

// TestUpgradeWithQueuedEdits: a version 1 program writes and queues edits
// while offline; version 2 of the program (one field added, one upgrade
// hook) opens the same file, which Register brings to the new model, syncs,
// and the server has the edits of both versions, the old ones upgraded.
func TestUpgradeWithQueuedEdits(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "app.db")

	// The server is down while version 1 runs: its address refuses
	// connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + ln.Addr().String()
	ln.Close()

	// Version 1: writes and queues edits, cannot sync.
	{
		st, err := sqlite.Open(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		todos := core.NewTable[todoV1]("todo")
		eng, err := core.NewEngine(ctx, st, rest.NewClient(downURL, nil), &core.Options{Tables: []core.Table{todos}})
		if err != nil {
			t.Fatal(err)
		}
		w := core.WriterFor(eng, todos)
		a := &todoV1{ID: "a", Title: "milk"}
		for _, m := range []*todoV1{a, {ID: "b", Title: "eggs"}} {
			if err := w.Insert(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		a.Title = "oat milk"
		if err := w.Update(ctx, a, core.Changed("title")); err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Sync(ctx); err == nil {
			t.Fatal("version 1 synced with the server down")
		}
		if n := pending(t, eng); n == 0 {
			t.Fatal("version 1 left no queued edits")
		}
		eng.Close()
		st.Close()
	}

	// The server, now up: a document kind, so it stores every field.
	auth, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "server.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	svc, err := server.New(ctx, auth, &server.Options{Tables: []core.Table{core.Documents("todo")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	srv := httptest.NewServer(rest.NewHandler(svc, nil))
	t.Cleanup(srv.Close)

	// Version 2: opens the same file, adds its edit, syncs.
	var logs bytes.Buffer
	st, err := sqlite.Open(ctx, path, &sqlite.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	todos := core.NewTable[todoV2]("todo", core.WithSchema(2, upgradeV1))
	eng, err := core.NewEngine(ctx, st, rest.NewClient(srv.URL, nil), &core.Options{Tables: []core.Table{todos}})
	if err != nil {
		t.Fatalf("version 2 does not start on version 1's file: %v", err)
	}
	t.Cleanup(func() { eng.Close() })
	if !strings.Contains(logs.String(), "added a column") || !strings.Contains(logs.String(), "column=priority") {
		t.Errorf("no log line for the added column priority: %q", logs.String())
	}
	if err := core.WriterFor(eng, todos).Insert(ctx, &todoV2{ID: "c", Title: "tea", Priority: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Sync(ctx); err != nil {
		t.Fatalf("version 2 sync: %v", err)
	}
	if n := pending(t, eng); n != 0 {
		t.Errorf("%d ops still queued after the sync", n)
	}

	want := map[string]string{
		"a": `{"priority":2,"title":"oat milk"}`, // version 1's create and update, upgraded
		"b": `{"priority":2,"title":"eggs"}`,
		"c": `{"priority":5,"title":"tea"}`, // version 2's edit
	}
	for id, data := range want {
		var rec core.Record
		if err := auth.View(ctx, func(ctx context.Context, tx core.Tx) error {
			rec, err = tx.Get(ctx, "todo", id)
			return err
		}); err != nil {
			t.Fatalf("the server has no todo %s: %v", id, err)
		}
		if got := canonical(t, rec.Data); got != data {
			t.Errorf("server todo %s = %s, want %s", id, got, data)
		}
	}
	// The replica's rows end at the server's versions, the new column filled.
	var rows []todoV2
	if err := st.DB().NewSelect().Model(&rows).Order("id").Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Priority != 2 || rows[0].Title != "oat milk" || rows[2].Priority != 5 {
		t.Errorf("replica rows after the sync: %+v", rows)
	}
}

func pending(t *testing.T, eng *core.Engine) int {
	t.Helper()
	counts, err := eng.Pending(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range counts {
		n += c.Count
	}
	return n
}

func canonical(t *testing.T, data json.RawMessage) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
