package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStartServer makes a server outside a test's life: its settings win
// over the test settings, a database copies another, and Close cleans up.
func TestStartServer(t *testing.T) {
	require(t)
	if _, err := StartServer("fsync = on"); err == nil {
		t.Fatal("a setting with spaces was accepted")
	}
	s, err := StartServer("fsync=on", "synchronous_commit=on")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	dsn, name, err := s.CreateDB("")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	if !s.External() && fsync != "on" {
		t.Errorf("fsync = %s, want on (the setting given)", fsync)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	copyDSN, copyName, err := s.CreateDB(name)
	if err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, copyDSN)
	if err != nil {
		t.Fatal(err)
	}
	var x int
	if err := conn.QueryRow(ctx, "SELECT x FROM t").Scan(&x); err != nil || x != 42 {
		t.Errorf("the copy holds %d, %v; want 42", x, err)
	}
	conn.Close(ctx)
	if err := s.DropDB(copyName); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, copyDSN); err == nil {
		t.Error("a dropped database still accepts connections")
	}
	dir := ""
	if s.cluster != nil {
		dir = s.cluster.Dir()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if dir != "" {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("the cluster's directory is still there: %v", err)
		}
	}
}
