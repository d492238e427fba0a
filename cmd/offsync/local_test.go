package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

func TestLocal(t *testing.T) {
	t.Parallel()
	srv := startConfigServe(t)
	writeClientConfig(t, srv.URL, "")

	mustRun(t, 0, "local", "put", "note", "b", `{"title":"second","n":2}`)
	mustRun(t, 0, "local", "put", "note", "a", `{"title":"first","tags":["x"]}`)
	// From standard input.
	cmd := exec.Command(offsyncBin, "local", "put", "note", "c", "-")
	cmd.Dir = workDir(t)
	cmd.Stdin = strings.NewReader(`{"title":"third"}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("put from stdin: %v\n%s", err, out)
	}

	out, _ := mustRun(t, 0, "local", "get", "note", "a")
	if strings.TrimSpace(out) != `{"tags":["x"],"title":"first"}` && strings.TrimSpace(out) != `{"title":"first","tags":["x"]}` {
		t.Fatalf("get: %q", out)
	}
	js, _ := mustRun(t, 0, "local", "get", "note", "b", "--json")
	var rec recordJSON
	if err := json.Unmarshal([]byte(js), &rec); err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	_ = json.Unmarshal(rec.Data, &data)
	if rec.Kind != "note" || rec.ID != "b" || data["title"] != "second" || data["n"] != float64(2) || rec.UpdatedAt != "" {
		t.Fatalf("get --json: %+v %v", rec, data)
	}

	js, _ = mustRun(t, 0, "local", "list", "note", "--json")
	var list []recordJSON
	if err := json.Unmarshal([]byte(js), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ID != "a" || list[1].ID != "b" || list[2].ID != "c" {
		t.Fatalf("list: %+v", list)
	}
	out, _ = mustRun(t, 0, "local", "list", "note", "--after", "a", "--limit", "1")
	if !strings.Contains(out, "b") || strings.Contains(out, "third") || !strings.Contains(out, "(not synced)") {
		t.Fatalf("list --after a --limit 1:\n%s", out)
	}

	mustRun(t, 0, "sync")
	out, _ = mustRun(t, 0, "local", "list", "note")
	if strings.Contains(out, "(not synced)") {
		t.Fatalf("rows without a version after a sync:\n%s", out)
	}
	mustRun(t, 0, "local", "delete", "note", "a")
	out, _ = mustRun(t, 0, "local", "get", "note", "a")
	if strings.TrimSpace(out) != "(deleted locally)" {
		t.Fatalf("get of a deleted row: %q", out)
	}
	out, _ = mustRun(t, 0, "local", "list", "note")
	if strings.Contains(out, "first") {
		t.Fatalf("a deleted row is listed:\n%s", out)
	}
	out, _ = mustRun(t, 0, "local", "list", "note", "--deleted")
	if !strings.Contains(out, "(deleted locally)") {
		t.Fatalf("--deleted does not show the tombstone:\n%s", out)
	}
	// The delete waits in the outbox.
	js, _ = mustRun(t, 0, "status", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Outbox["pending"] != 1 {
		t.Fatalf("outbox: %+v", rep.Outbox)
	}

	// Mistakes.
	mustRun(t, 1, "local", "get", "note", "missing")
	_, stderr := mustRun(t, 2, "local", "get", "nokind", "x")
	if !strings.Contains(stderr, "nokind") {
		t.Fatalf("unknown kind: %s", stderr)
	}
	mustRun(t, 2, "local", "put", "note", "x", `[1,2]`)
	mustRun(t, 2, "local", "put", "note", "x", `{"a":1} {"b":2}`)
	mustRun(t, 2, "local", "put", "note", "x")
	mustRun(t, 1, "local", "put", "note", "x", `{"_reserved":1}`)
}

func TestHelpHasExamples(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"sync"}, {"status"}, {"conflicts"}, {"conflicts", "list"}, {"conflicts", "show"}, {"conflicts", "resolve"},
		{"dead-letters"}, {"dead-letters", "list"}, {"dead-letters", "retry"}, {"dead-letters", "drop"},
		{"local"}, {"local", "get"}, {"local", "put"}, {"local", "delete"}, {"local", "list"}, {"serve"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			t.Parallel()
			helpHasExamples(t, args)
		})
	}
}

func helpHasExamples(t *testing.T, args []string) {
	{
		out, _ := mustRun(t, 0, append(args, "--help")...)
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "offsync "+args[0]) {
			t.Errorf("offsync %s --help has no examples:\n%s", strings.Join(args, " "), out)
		}
		if args[0] != "serve" && !strings.Contains(out, "--config") {
			t.Errorf("offsync %s --help lacks --config", strings.Join(args, " "))
		}
	}
}
