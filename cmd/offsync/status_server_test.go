package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

// offsync status server reads a server's database: per kind, the
// tombstones it holds and the horizon of what was collected.
func TestStatusServer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "authority.db")
	st, err := sqlite.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := core.NewManualClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC))
	svc, err := server.New(ctx, st, &server.Options{Tables: []core.Table{core.Documents("note"), core.Documents("task")},
		Clock: clock, TombstoneRetention: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"a", "b"} {
		res, err := svc.Push(ctx, []core.Op{{OpID: "c" + id, Kind: "note", ID: id, Type: core.OpUpsert, Payload: []byte(`{}`)}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Push(ctx, []core.Op{{OpID: "d" + id, Kind: "note", ID: id, Type: core.OpDelete, BaseUpdatedAt: res[0].Record.UpdatedAt}}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			clock.Advance(2 * time.Hour) // a's tombstone passes the retention, b's does not
		}
	}
	if _, err := svc.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	svc.Close()
	st.Close()
	cfg := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(cfg, []byte("store:\n  driver: sqlite\n  dsn: "+db+"\nserver:\n  kinds: [note, task]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := mustRun(t, 0, "status", "server", "--config", cfg, "--json")
	var got struct{ Kinds []server.KindStatus }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got.Kinds) != 2 || got.Kinds[0].Kind != "note" || got.Kinds[0].Tombstones != 1 || got.Kinds[0].Horizon.IsZero() ||
		got.Kinds[1].Tombstones != 0 || !got.Kinds[1].Horizon.IsZero() {
		t.Fatalf("status server --json: %s", out)
	}
	out, _ = mustRun(t, 0, "status", "server", "--config", cfg)
	if !strings.Contains(out, "KIND  TOMBSTONES") || !strings.Contains(out, "none collected") {
		t.Fatalf("status server:\n%s", out)
	}
	if _, stderr, code := runCLI(t, "status", "server"); code != 2 || !strings.Contains(stderr, "--config is required") {
		t.Fatalf("without --config: exit %d, %s", code, stderr)
	}
}
