package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	srvDir := t.TempDir()
	// The server serves note only: a push of a task is refused for good.
	writeFile(t, srvDir, "server.yaml", "store: {dsn: s.db}\nserver: {kinds: [note]}\n")
	srv := startServeIn(t, srvDir, "--config", "server.yaml")
	writeFile(t, workDir(t), "offsync.yaml", fmt.Sprintf("store: {dsn: c.db}\ntransport: {url: %s}\ntables: {note: {}, task: {}}\n", srv.URL))

	mustRun(t, 0, "local", "put", "task", "t1", `{"a":1}`)
	out, _ := mustRun(t, 0, "dead-letters", "list")
	if strings.TrimSpace(out) != "no dead letters" {
		t.Fatalf("empty list: %q", out)
	}
	mustRun(t, 1, "sync", "--kind", "task")

	js, _ := mustRun(t, 0, "dead-letters", "list", "--json")
	var ops []opJSON
	if err := json.Unmarshal([]byte(js), &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 1 || ops[0].Kind != "task" || ops[0].ID != "t1" || ops[0].State != "dead" || ops[0].LastError == "" {
		t.Fatalf("dead letters: %+v", ops)
	}
	id := ops[0].OpID
	out, _ = mustRun(t, 0, "dead-letters", "list")
	if !strings.Contains(out, id) || !strings.Contains(out, "unknown kind") {
		t.Fatalf("text list:\n%s", out)
	}
	out, _ = mustRun(t, 0, "dead-letters", "retry", id)
	if !strings.Contains(out, "retried "+id) {
		t.Fatalf("retry: %q", out)
	}
	js, _ = mustRun(t, 0, "status", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.DeadLetters != 0 || rep.Outbox["pending"] != 1 {
		t.Fatalf("after retry: %+v", rep)
	}
	mustRun(t, 1, "sync", "--kind", "task") // refused again: dead again
	// The server learns the kind; dropping the op then restores the row to
	// the authority's version: none, so the local row goes away.
	if code := srv.Stop(t); code != 0 {
		t.Fatalf("serve exited with %d", code)
	}
	writeFile(t, srvDir, "server.yaml", "store: {dsn: s.db}\nserver: {kinds: [note, task]}\n")
	srv = startServeIn(t, srvDir, "--config", "server.yaml")
	writeFile(t, workDir(t), "offsync.yaml", fmt.Sprintf("store: {dsn: c.db}\ntransport: {url: %s}\ntables: {note: {}, task: {}}\n", srv.URL))
	out, _ = mustRun(t, 0, "dead-letters", "drop", id)
	if !strings.Contains(out, "dropped "+id) {
		t.Fatalf("drop: %q", out)
	}
	out, _ = mustRun(t, 0, "dead-letters", "list")
	if strings.TrimSpace(out) != "no dead letters" {
		t.Fatalf("after drop: %q", out)
	}
	mustRun(t, 1, "local", "get", "task", "t1")
	_, stderr := mustRun(t, 1, "dead-letters", "retry", "no-such-op")
	if !strings.Contains(stderr, "no-such-op") {
		t.Fatalf("unknown op: %s", stderr)
	}
	mustRun(t, 2, "dead-letters", "drop")
}

// TestDeadLetterDropWorksLocally: a dead op of a kind the server does not
// serve is dropped while the server answers (its fetch is refused) and while
// it is down; both times the op leaves the outbox and the command says the
// server's version was not fetched.
func TestDeadLetterDropWorksLocally(t *testing.T) {
	t.Parallel()
	srvDir := t.TempDir()
	writeFile(t, srvDir, "server.yaml", "store: {dsn: s.db}\nserver: {kinds: [note]}\n")
	srv := startServeIn(t, srvDir, "--config", "server.yaml")
	writeFile(t, workDir(t), "offsync.yaml", fmt.Sprintf("store: {dsn: c.db}\ntransport: {url: %s}\ntables: {note: {}, task: {}}\n", srv.URL))
	deadOp := func(id string) string {
		t.Helper()
		mustRun(t, 0, "local", "put", "task", id, `{"a":1}`)
		runCLI(t, "sync", "--kind", "task")
		js, _ := mustRun(t, 0, "dead-letters", "list", "--json")
		var ops []opJSON
		if err := json.Unmarshal([]byte(js), &ops); err != nil {
			t.Fatal(err)
		}
		for _, op := range ops {
			if op.ID == id {
				return op.OpID
			}
		}
		t.Fatalf("no dead letter for task %s: %s", id, js)
		return ""
	}

	op := deadOp("t1")
	out, _ := mustRun(t, 0, "dead-letters", "drop", op)
	if !strings.Contains(out, "dropped "+op) || !strings.Contains(out, "not fetched") || !strings.Contains(out, "unknown kind") {
		t.Errorf("drop of an unserved kind's op:\n%s", out)
	}
	mustRun(t, 1, "local", "get", "task", "t1")

	op = deadOp("t2")
	if code := srv.Stop(t); code != 0 {
		t.Fatalf("serve exited with %d", code)
	}
	out, _ = mustRun(t, 0, "dead-letters", "drop", op)
	if !strings.Contains(out, "dropped "+op) || !strings.Contains(out, "not fetched") {
		t.Errorf("drop while offline:\n%s", out)
	}
	out, _ = mustRun(t, 0, "dead-letters", "list")
	if strings.TrimSpace(out) != "no dead letters" {
		t.Errorf("after the drops: %q", out)
	}
}
