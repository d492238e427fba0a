package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

// TestReadmeProgram runs the README's program against a real server on
// 127.0.0.1: the todo reaches the server with its update.
func TestReadmeProgram(t *testing.T) {
	ctx := t.Context()
	auth, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "server.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	svc, err := server.New(ctx, auth, &server.Options{Tables: []core.Table{core.Documents("todo")}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	srv := httptest.NewServer(rest.NewHandler(svc, nil))
	defer srv.Close()

	stats, err := run(ctx, filepath.Join(t.TempDir(), "app.db"), srv.URL, false)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pushed != 1 {
		t.Errorf("pushed %d ops, want 1 (the insert and the update coalesce)", stats.Pushed)
	}
	rec, err := svc.Get(context.Background(), "todo", "t1")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Title string `json:"title"`
		Done  bool   `json:"done"`
	}
	if err := json.Unmarshal(rec.Data, &got); err != nil || got.Title != "buy oat milk" {
		t.Errorf("the server has %s (%v)", rec.Data, err)
	}
}
