package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitOutput waits until buf holds want; a generous bound fails a stuck
// watch instead of hanging the run (no figure depends on it).
func waitOutput(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(cliTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(buf.String(), want) {
			return
		}
	}
	t.Fatalf("the watch never printed %q:\n%s", want, buf.String())
}

// offsync status --watch on a pipe prints plain lines whenever the replica
// changes: a local write shows in the outbox, and a sync (from another
// process) empties it and moves the cursor, which the watch reports as the
// last sync seen. Ctrl-C (SIGINT) ends it with exit 0.
func TestStatusWatchFollowsTheReplica(t *testing.T) {
	t.Parallel()
	srv := startConfigServe(t)
	writeClientConfig(t, srv.URL, "")
	mustRun(t, 0, "local", "put", "note", "n1", `{"title":"milk"}`)

	cmd := exec.Command(offsyncBin, "status", "--watch", "--interval", "50ms")
	cmd.Dir = workDir(t)
	out, errb := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	waitOutput(t, out, "note: pending 1, unanswered 0, deferred 0, dead 0, conflicts 0, cursor -")
	waitOutput(t, out, "last sync seen: none seen since the watch started")
	if strings.Contains(out.String(), "\x1b[") {
		t.Fatalf("escape codes on a pipe:\n%q", out.String())
	}

	// A second local write, then a sync by another process.
	mustRun(t, 0, "local", "put", "task", "t1", `{"title":"call"}`)
	waitOutput(t, out, "task: pending 1,")
	mustRun(t, 0, "sync")
	waitOutput(t, out, "note: pending 0, unanswered 0, deferred 0, dead 0, conflicts 0, cursor 20")
	waitOutput(t, out, "outbox: 0 ops;")
	waitOutput(t, out, "'s cursor moved")
	waitOutput(t, out, "2 ops left the outbox")

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("the watch ended with %v after SIGINT, want exit 0\nstderr: %s", waitErr, errb.String())
		}
	case <-time.After(cliTimeout):
		t.Fatalf("the watch did not stop on SIGINT")
	}
}

// --count stops the watch; --json prints one object per line, the first
// at once; the flags of the watch need --watch.
func TestStatusWatchCountAndJSON(t *testing.T) {
	t.Parallel()
	srv := startConfigServe(t)
	writeClientConfig(t, srv.URL, "")
	mustRun(t, 0, "local", "put", "note", "n1", `{}`)
	stdout, _ := mustRun(t, 0, "status", "--watch", "--interval", "10ms", "--count", "3", "--json")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	// The replica did not change: the first refresh only.
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1 (nothing changed after the first):\n%s", len(lines), stdout)
	}
	var got watchLine
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatal(err)
	}
	if got.At == "" || got.Outbox["pending"] != 1 || got.LastSyncSeen != "" {
		t.Fatalf("line %+v", got)
	}

	for _, args := range [][]string{
		{"status", "--interval", "1s"},
		{"status", "--count", "2"},
		{"status", "--watch", "--interval", "0s"},
		{"status", "--watch", "--count", "-1"},
	} {
		_, stderr := mustRun(t, 2, args...)
		if !strings.Contains(stderr, "--") {
			t.Errorf("offsync %s: %q names no flag", strings.Join(args, " "), stderr)
		}
	}
}

// The watch tells a sync by its traces: a cursor that moved, ops that left
// the outbox; a refresh without change is no change.
func TestStatusWatchSeesSyncs(t *testing.T) {
	w := &watchState{started: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	rep := statusReport{Outbox: map[string]int{"pending": 1}, Kinds: []kindStatus{{Kind: "note", Outbox: map[string]int{"pending": 1}}}}
	if !w.observe(w.started, rep) {
		t.Fatal("the first refresh is a change")
	}
	if got := w.lastSync(); got != "none seen since the watch started at 2026-12-02T10:00:00Z" {
		t.Fatalf("before a sync: %q", got)
	}
	synced := statusReport{Outbox: map[string]int{}, Kinds: []kindStatus{{Kind: "note", Outbox: map[string]int{},
		Cursor: &cursorJSON{UpdatedAt: "2026-12-02T10:00:01.000000Z", ID: "n1"}}}}
	at := w.started.Add(time.Second)
	if !w.observe(at, synced) || w.lastSeen != at || w.lastWhat != "note's cursor moved, 1 op left the outbox" {
		t.Fatalf("after a sync: seen %v %q", w.lastSeen, w.lastWhat)
	}
	if w.observe(at.Add(time.Second), synced) || w.lastSeen != at {
		t.Fatalf("no change: seen %v", w.lastSeen)
	}
	// A new local write is a change, not a sync.
	if !w.observe(at.Add(2*time.Second), rep) || w.lastSeen != at {
		t.Fatalf("a local write: seen %v", w.lastSeen)
	}
	w.observe(at, synced)

	// On a terminal a refresh is a frame drawn in place; elsewhere, lines.
	var frame bytes.Buffer
	if err := writeFrame(&frame, at, "client.db", synced, w); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(frame.String(), clearScreen) || !strings.Contains(frame.String(), "KIND") ||
		!strings.Contains(frame.String(), "last sync seen: 2026-12-02T10:00:01Z") {
		t.Fatalf("frame %q", frame.String())
	}
	if isTerminal(&frame) {
		t.Fatal("a buffer is no terminal")
	}
	var b bytes.Buffer
	if err := writePlain(&b, at, synced, w); err != nil {
		t.Fatal(err)
	}
	if want := "2026-12-02T10:00:01Z note: pending 0, unanswered 0, deferred 0, dead 0, conflicts 0, cursor 2026-12-02T10:00:01.000000Z n1\n" +
		"2026-12-02T10:00:01Z outbox: 0 ops; conflicts: 0; dead letters: 0; last sync seen: 2026-12-02T10:00:01Z (note's cursor moved, 1 op left the outbox)\n"; b.String() != want {
		t.Fatalf("plain lines:\n%s\nwant:\n%s", b.String(), want)
	}
}
