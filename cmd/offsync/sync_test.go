package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
)

// Helpers for the commands driven by config files (sync, status, conflicts,
// dead-letters, local, serve --config).

const testToken = "cli-test-token"

// The configs of these tests read the token from the environment, as real
// ones do; it is set once so that the tests can run in parallel.
func init() { os.Setenv("OFFSYNC_TEST_TOKEN", testToken) }

// writeFile writes content to dir/name and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startConfigServe writes server.yaml (kinds note and task, one token read
// from OFFSYNC_TEST_TOKEN) in a fresh directory and runs
// `offsync serve --config server.yaml` there.
func startConfigServe(t *testing.T) *serveProcess {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, "server.yaml", `store:
  driver: sqlite
  dsn: server.db
server:
  kinds: [note, task]
  tokens:
    - token: "${OFFSYNC_TEST_TOKEN}"
      principal: tester
`)
	return startServeIn(t, dir, "--config", "server.yaml")
}

// writeClientConfig writes offsync.yaml for a replica of url in workDir(t)
// (so commands run there need no --config) and returns its path.
func writeClientConfig(t testing.TB, url string, extra string) string {
	t.Helper()
	return writeFile(t, workDir(t), "offsync.yaml", fmt.Sprintf(`store: {driver: sqlite, dsn: client.db}
transport:
  url: %s
  token: "${OFFSYNC_TEST_TOKEN}"
sync: {page_size: 1000}
tables:
  note: {}
  task: {}
%s`, url, extra))
}

// mustRun runs offsync and fails the test unless it exits with want.
func mustRun(t testing.TB, want int, args ...string) (stdout, stderr string) {
	t.Helper()
	stdout, stderr, code := runCLI(t, args...)
	if code != want {
		t.Fatalf("offsync %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, stdout, stderr)
	}
	return stdout, stderr
}

func TestSyncPushesAndPulls(t *testing.T) {
	t.Parallel()
	srv := startConfigServe(t)
	writeClientConfig(t, srv.URL, "")
	mustRun(t, 0, "local", "put", "note", "n1", `{"title":"milk"}`)
	mustRun(t, 0, "local", "put", "task", "t1", `{"title":"call","done":false}`)
	out, _ := mustRun(t, 0, "sync")
	// The pull reads the two pushes back: they are this replica's own, not
	// pulled changes.
	for _, want := range []string{"pull note: 1/1", "pull task: 1/1", "pushed 2, pulled 0,", "2 own pushes read back", "errors 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("sync output lacks %q:\n%s", want, out)
		}
	}

	// A second replica (another work dir) pulls what the first pushed.
	dir2 := t.TempDir()
	writeFile(t, dir2, "c2.yaml", fmt.Sprintf("store: {dsn: two.db}\ntransport: {url: %s, token: \"${OFFSYNC_TEST_TOKEN}\"}\ntables: {note: {}}\n", srv.URL))
	out2, errOut, code := runCLIIn(t, dir2, "sync", "--config", "c2.yaml")
	if code != 0 || !strings.Contains(out2, "pulled 1") {
		t.Fatalf("second replica: exit %d\n%s\n%s", code, out2, errOut)
	}
	got, _, code := runCLIIn(t, dir2, "local", "get", "note", "n1", "-c", "c2.yaml")
	if code != 0 || strings.TrimSpace(got) != `{"title":"milk"}` {
		t.Fatalf("local get on the second replica: exit %d, %q", code, got)
	}
}

func TestSyncFailsWithoutServer(t *testing.T) {
	t.Parallel()
	writeClientConfig(t, "http://127.0.0.1:1", "")
	mustRun(t, 0, "local", "put", "note", "n1", `{"title":"x"}`)
	out, stderr := mustRun(t, 1, "sync")
	if !strings.Contains(out, "synced in") || !strings.Contains(stderr, "offsync: sync") {
		t.Fatalf("want a summary and an error:\nstdout:\n%s\nstderr:\n%s", out, stderr)
	}
	// The op is still in the outbox.
	js, _ := mustRun(t, 0, "status", "--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatal(err)
	}
	if n := rep.Outbox["pending"] + rep.Outbox["in_flight"]; n != 1 {
		t.Fatalf("outbox after a failed sync = %v, want 1 op", rep.Outbox)
	}
}

func TestSyncConfigMistakes(t *testing.T) {
	t.Parallel()
	writeFile(t, workDir(t), "bad.yaml", `store: {dsn: c.db}
transport:
  url: http://127.0.0.1:1
  tokn: x
sync:
  interval: soon
conflicts:
  default: mostRecent
`)
	_, stderr := mustRun(t, 2, "sync", "--config", "bad.yaml")
	for _, want := range []string{"bad.yaml:4:3:", `unknown key "tokn"`, "bad.yaml:6:13:", "bad.yaml:8:3:", `unknown strategy "mostRecent"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	_, stderr = mustRun(t, 2, "status", "--config", "missing.yaml")
	if !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("a missing config is not named: %s", stderr)
	}
}

func TestServeConfigRefusesFlagClash(t *testing.T) {
	t.Parallel()
	writeFile(t, workDir(t), "server.yaml", "store: {dsn: s.db}\nserver: {kinds: [note]}\n")
	_, stderr := mustRun(t, 2, "serve", "--config", "server.yaml", "--db", "other.db")
	if !strings.Contains(stderr, "--db") {
		t.Fatalf("stderr: %s", stderr)
	}
	writeFile(t, workDir(t), "bad.yaml", "store: {dsn: s.db}\nserver: {kinds: [note], colour: red}\n")
	_, stderr = mustRun(t, 2, "serve", "--config", "bad.yaml")
	if !strings.Contains(stderr, "bad.yaml:2:25:") {
		t.Fatalf("stderr: %s", stderr)
	}
}

// seedServer writes n note records straight into the server's SQLite
// database (far faster than pushing them through HTTP).
func seedServer(t *testing.T, dbPath string, n int) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Register(ctx, core.Documents("note")); err != nil {
		t.Fatal(err)
	}
	err = store.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		base, err := tx.NextVersion(ctx, "note", time.Now())
		if err != nil {
			return err
		}
		// ApplyPage is the store's bulk upsert; on the authority's own
		// database it writes the rows its feed serves.
		for start := 0; start < n; start += 1000 {
			recs := make([]core.Record, 0, 1000)
			for i := start; i < min(n, start+1000); i++ {
				recs = append(recs, core.Record{Kind: "note", ID: fmt.Sprintf("n%06d", i), UpdatedAt: base.Add(time.Duration(i) * time.Microsecond),
					Data: json.RawMessage(`{"title":"note ` + strconv.Itoa(i) + `"}`)})
			}
			if _, err := tx.ApplyPage(ctx, "note", recs); err != nil {
				return err
			}
		}
		_, err = tx.NextVersion(ctx, "note", base.Add(time.Duration(n)*time.Microsecond))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// bigCount is the size of the big sync test: the acceptance's 100,000
// records (a few seconds); OFFSYNC_CLI_RECORDS=N runs another size.
func bigCount(t *testing.T) int {
	if s := os.Getenv("OFFSYNC_CLI_RECORDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("OFFSYNC_CLI_RECORDS=%q: want a positive number", s)
		}
		return n
	}
	return 100_000
}

func TestSyncProgressBigServer(t *testing.T) {
	t.Parallel()
	n := bigCount(t)
	srvDir := t.TempDir()
	seedServer(t, filepath.Join(srvDir, "server.db"), n)
	writeFile(t, srvDir, "server.yaml", "store: {dsn: server.db}\nserver:\n  kinds: [note]\n  tokens: [{token: \"${OFFSYNC_TEST_TOKEN}\", principal: tester}]\n")
	srv := startServeIn(t, srvDir, "--config", "server.yaml")
	cfg := fmt.Sprintf("store: {dsn: client.db}\ntransport: {url: %s, token: \"${OFFSYNC_TEST_TOKEN}\"}\nsync: {page_size: 1000}\ntables: {note: {}}\n", srv.URL)

	t.Run("plain lines when not a terminal", func(t *testing.T) {
		writeFile(t, workDir(t), "offsync.yaml", cfg)
		out, _ := mustRun(t, 0, "sync")
		// One line a page, with the total once the server knows it: the
		// reference server counts at most 20 pages ahead (and again when
		// that is used up), so the total shows on the last pages, exact.
		lines := regexp.MustCompile(`(?m)^pull note: (\d+)(?:/(\d+))?$`).FindAllStringSubmatch(out, -1)
		if want := (n + 999) / 1000; len(lines) != want {
			t.Fatalf("%d progress lines, want %d (one a page):\n%.2000s", len(lines), want, out)
		}
		for i, l := range lines {
			if l[1] != strconv.Itoa(min(n, (i+1)*1000)) || (l[2] != "" && l[2] != strconv.Itoa(n)) {
				t.Fatalf("line %d is %q, want %d/%d", i, l[0], min(n, (i+1)*1000), n)
			}
		}
		if last := lines[len(lines)-1]; last[2] != strconv.Itoa(n) {
			t.Fatalf("last line %q: want the total %d", last[0], n)
		}
		if !strings.Contains(out, fmt.Sprintf("pulled %d, kept 0", n)) || strings.Contains(out, "\r") {
			t.Fatalf("summary or carriage returns:\n%s", out[len(out)-min(len(out), 500):])
		}
		js, _ := mustRun(t, 0, "status", "--json")
		var rep statusReport
		if err := json.Unmarshal([]byte(js), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Kinds) != 1 || rep.Kinds[0].Cursor == nil || rep.Kinds[0].Cursor.ID != fmt.Sprintf("n%06d", n-1) {
			t.Fatalf("cursor after the big sync: %+v", rep.Kinds)
		}
	})

	t.Run("a progress bar on a terminal", func(t *testing.T) {
		dir := workDir(t)
		writeFile(t, dir, "offsync.yaml", cfg)
		// script(1) runs the command on a pseudo-terminal.
		ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "script", "-qec", offsyncBin+" sync", "/dev/null")
		cmd.Dir = dir
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("script: %v\n%s", err, b)
		}
		out := string(b)
		if !strings.Contains(out, "pull note") || !strings.Contains(out, "100%") || !strings.Contains(out, "\r") || !strings.Contains(out, fmt.Sprintf("(%d/%d", n, n)) {
			t.Fatalf("no progress bar on the terminal:\n%.3000s", out)
		}
		if strings.Contains(out, "pull note: 1000/") {
			t.Fatalf("plain progress lines on a terminal:\n%.2000s", out)
		}
		if !strings.Contains(out, fmt.Sprintf("pulled %d", n)) {
			t.Fatalf("no summary:\n%s", out[len(out)-min(len(out), 500):])
		}
	})
	_ = srv
}
