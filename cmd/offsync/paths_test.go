package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigRelativePaths: a relative store.dsn names a file beside the
// config, whatever the working directory, and the read-only commands never
// create a database: they say there is none.
func TestConfigRelativePaths(t *testing.T) {
	t.Parallel()
	dir := workDir(t)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	// No server: every command here works offline.
	writeFile(t, dir, "client.yaml", "store: {dsn: c.db}\ntransport: {url: \"http://127.0.0.1:1\"}\ntables: {note: {}}\n")
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }

	for _, args := range [][]string{{"status"}, {"conflicts", "list"}, {"dead-letters", "list"}} {
		out, stderr, code := runCLIIn(t, sub, append(args, "-c", "../client.yaml")...)
		if code != 1 || !strings.Contains(stderr, "no local database at "+filepath.Join("..", "c.db")) {
			t.Errorf("%v without a database: exit %d, want 1 naming ../c.db\n%s%s", args, code, out, stderr)
		}
	}
	if exists(filepath.Join(dir, "c.db")) || exists(filepath.Join(sub, "c.db")) {
		t.Fatal("a read-only command created a database")
	}

	if out, stderr, code := runCLIIn(t, sub, "local", "put", "note", "n1", `{"t":1}`, "-c", "../client.yaml"); code != 0 {
		t.Fatalf("local put: exit %d\n%s%s", code, out, stderr)
	}
	if !exists(filepath.Join(dir, "c.db")) || exists(filepath.Join(sub, "c.db")) {
		t.Fatalf("the write did not go to the database beside the config (c.db: %v, sub/c.db: %v)",
			exists(filepath.Join(dir, "c.db")), exists(filepath.Join(sub, "c.db")))
	}
	// From either directory the commands see the same database.
	for _, d := range []struct{ dir, cfg string }{{sub, "../client.yaml"}, {dir, "client.yaml"}} {
		out, stderr, code := runCLIIn(t, d.dir, "status", "-c", d.cfg)
		if code != 0 || !strings.Contains(out, "outbox: 1 ops") {
			t.Errorf("status from %s: exit %d\n%s%s", d.dir, code, out, stderr)
		}
	}
}
