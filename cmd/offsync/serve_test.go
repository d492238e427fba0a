package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/offsync/offsync/internal/pgtest"
)

// call sends one request to a running server and returns the status and
// the decoded JSON body (nil when the body is not JSON).
func call(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		m = nil
	}
	return resp.StatusCode, m
}

func items(t *testing.T, body map[string]any) []map[string]any {
	t.Helper()
	raw, ok := body["items"].([]any)
	if !ok {
		t.Fatalf("no items in %v", body)
	}
	out := make([]map[string]any, len(raw))
	for i, it := range raw {
		out[i] = it.(map[string]any)
	}
	return out
}

func TestServeFreshDirectoryHealth(t *testing.T) {
	p := startServe(t)
	status, body := call(t, "GET", p.URL+"/health", "", "")
	if status != 200 || body["status"] != "ok" || body["protocol"] != float64(1) {
		t.Fatalf("/health: %d %v", status, body)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "offsync.db")); err != nil {
		t.Fatalf("default database not created in the working directory: %v", err)
	}
	logs := p.Stderr()
	for _, want := range []string{"listening on " + p.Addr, "serving any kind matching", "authentication off"} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %q:\n%s", want, logs)
		}
	}
	if code := p.Stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestServeRoundTripAndRestart(t *testing.T) {
	p := startServe(t, "--db", "data.db")
	status, put := call(t, "PUT", p.URL+"/note/n%2F1", "", `{"title":"hello","n":1}`)
	if status != 200 || put["id"] != "n/1" || put["title"] != "hello" || put["updated_at"] == nil {
		t.Fatalf("PUT: %d %v", status, put)
	}
	status, got := call(t, "GET", p.URL+"/note/n%2F1", "", "")
	if status != 200 || got["title"] != "hello" || got["updated_at"] != put["updated_at"] {
		t.Fatalf("GET: %d %v", status, got)
	}
	// A create on an existing row is a conflict; with the base it applies.
	if status, body := call(t, "PUT", p.URL+"/note/n%2F1", "", `{"title":"again"}`); status != 409 || body["error"] != "conflict" {
		t.Fatalf("second create: %d %v", status, body)
	}
	status, upd := call(t, "PUT", p.URL+"/note/n%2F1", "", `{"title":"bye","_baseUpdatedAt":"`+put["updated_at"].(string)+`"}`)
	if status != 200 || upd["title"] != "bye" {
		t.Fatalf("update: %d %v", status, upd)
	}
	status, pull := call(t, "GET", p.URL+"/note?includeDeleted=true", "", "")
	if status != 200 || len(items(t, pull)) != 1 || items(t, pull)[0]["title"] != "bye" {
		t.Fatalf("pull: %d %v", status, pull)
	}
	if code := p.Stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// Every commit is durable: a new process on the same file sees it.
	p = startServe(t, "--db", "data.db")
	if status, got := call(t, "GET", p.URL+"/note/n%2F1", "", ""); status != 200 || got["title"] != "bye" {
		t.Fatalf("after restart: %d %v", status, got)
	}
}

func TestServeKindsRestrict(t *testing.T) {
	p := startServe(t, "--kind", "note", "--kind", "task")
	if !strings.Contains(p.Stderr(), "kinds=note,task") {
		t.Errorf("start-up log does not name the kinds:\n%s", p.Stderr())
	}
	if status, _ := call(t, "PUT", p.URL+"/task/1", "", `{}`); status != 200 {
		t.Fatalf("PUT to a named kind: %d", status)
	}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/other/1", `{}`},
		{"DELETE", "/other/1", ``},
		{"GET", "/other", ``},
		{"GET", "/other/1", ``},
	} {
		status, body := call(t, c.method, p.URL+c.path, "", c.body)
		if status != 404 || body["error"] != "unknown_kind" {
			t.Errorf("%s %s: %d %v, want 404 unknown_kind", c.method, c.path, status, body)
		}
	}
}

func writeTokens(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(workDir(t), "tokens.txt")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestServeTokens(t *testing.T) {
	tokens := writeTokens(t, "# token principal\ntok-alice alice\n\ntok-bob\tbob\n")
	p := startServe(t, "--tokens", tokens)
	if status, _ := call(t, "GET", p.URL+"/health", "", ""); status != 200 {
		t.Fatalf("/health needs no token: %d", status)
	}
	for _, tok := range []string{"", "tok-carol", "tok-alice2"} {
		status, body := call(t, "PUT", p.URL+"/note/a", tok, `{}`)
		if status != 401 || body["error"] != "unauthorized" {
			t.Fatalf("PUT with token %q: %d %v, want 401", tok, status, body)
		}
		if status, _ := call(t, "GET", p.URL+"/note", tok, ""); status != 401 {
			t.Fatalf("GET with token %q: %d, want 401", tok, status)
		}
	}
	if status, _ := call(t, "PUT", p.URL+"/note/a", "tok-alice", `{}`); status != 200 {
		t.Fatalf("PUT with a good token: %d", status)
	}
	if status, body := call(t, "GET", p.URL+"/note", "tok-bob", ""); status != 200 || len(items(t, body)) != 1 {
		t.Fatalf("GET with a good token: %d %v", status, body)
	}
}

func TestServeTokensJSON(t *testing.T) {
	tokens := writeTokens(t, `{"tok-alice": "alice"}`)
	p := startServe(t, "--tokens", tokens)
	if status, _ := call(t, "GET", p.URL+"/note", "tok-alice", ""); status != 200 {
		t.Fatalf("good token: %d", status)
	}
	if status, _ := call(t, "GET", p.URL+"/note", "alice", ""); status != 401 {
		t.Fatalf("bad token: %d", status)
	}
}

func TestServeScope(t *testing.T) {
	tokens := writeTokens(t, "tok-alice alice\ntok-bob bob\n")
	p := startServe(t, "--tokens", tokens, "--scope", "note=owner")
	status, rec := call(t, "PUT", p.URL+"/note/a1", "tok-alice", `{"text":"alice's","owner":"bob"}`)
	if status != 200 || rec["owner"] != "alice" {
		t.Fatalf("alice's PUT: %d %v (the scope field must be set to the caller)", status, rec)
	}
	if status, _ := call(t, "PUT", p.URL+"/note/b1", "tok-bob", `{"text":"bob's"}`); status != 200 {
		t.Fatalf("bob's PUT: %d", status)
	}
	// An unscoped kind is shared.
	if status, _ := call(t, "PUT", p.URL+"/shared/s", "tok-alice", `{}`); status != 200 {
		t.Fatalf("PUT shared: %d", status)
	}
	_, body := call(t, "GET", p.URL+"/note", "tok-bob", "")
	got := items(t, body)
	if len(got) != 1 || got[0]["id"] != "b1" {
		t.Fatalf("bob pulled %v, want only b1", got)
	}
	if status, _ := call(t, "GET", p.URL+"/note/a1", "tok-bob", ""); status != 404 {
		t.Fatalf("bob fetching alice's note: %d, want 404", status)
	}
	if status, body := call(t, "PUT", p.URL+"/note/a1", "tok-bob", `{"text":"mine now"}`); status != 404 || body["current"] != nil {
		t.Fatalf("bob writing alice's note: %d %v, want 404 without the record", status, body)
	}
	if _, body := call(t, "GET", p.URL+"/shared", "tok-bob", ""); len(items(t, body)) != 1 {
		t.Fatalf("unscoped kind: %v", body)
	}
	if status, got := call(t, "GET", p.URL+"/note/a1", "tok-alice", ""); status != 200 || got["text"] != "alice's" {
		t.Fatalf("alice's note changed: %d %v", status, got)
	}
}

func TestServeSIGTERMWithOpenStream(t *testing.T) {
	p := startServe(t, "--log-format", "json")
	// An open event stream must not hold the shutdown up.
	resp, err := http.Get(p.URL + "/events?kinds=note")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/events: %s", resp.Status)
	}
	if status, _ := call(t, "PUT", p.URL+"/note/x", "", `{}`); status != 200 {
		t.Fatalf("PUT: %d", status)
	}
	// The notice arrives on the stream.
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data:") && strings.Contains(sc.Text(), `"note"`) {
			break
		}
	}
	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM\nlogs:\n%s", code, p.Stderr())
	}
	// The stream ended with the server.
	for sc.Scan() {
	}
	// Logs are JSON lines, and say it stopped cleanly.
	var msgs []string
	for _, line := range strings.Split(strings.TrimSpace(p.Stderr()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		msgs = append(msgs, m["msg"].(string))
	}
	if !strings.Contains(strings.Join(msgs, "|"), "shutting down|stopped") {
		t.Fatalf("log messages %q lack a clean shutdown", msgs)
	}
}

func TestServeSIGINT(t *testing.T) {
	p := startServe(t)
	p.Signal(t, os.Interrupt)
	if code := p.Wait(t); code != 0 {
		t.Fatalf("exit %d after SIGINT\nlogs:\n%s", code, p.Stderr())
	}
}

func TestServeBadFlags(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.txt")
	badTokens := writeTokens(t, "tok-alice alice extra\n")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"serve", "--bogus"}, "unknown flag: --bogus"},
		{"argument", []string{"serve", "extra"}, `unknown command "extra"`},
		{"bad kind", []string{"serve", "--kind", "Bad-Kind"}, `bad kind "Bad-Kind"`},
		{"reserved kind", []string{"serve", "--kind", "events"}, `kind "events" is reserved`},
		{"kind twice", []string{"serve", "--kind", "a", "--kind", "a"}, `kind "a" is named twice`},
		{"scope without =", []string{"serve", "--scope", "note"}, "want KIND=FIELD"},
		{"scope twice", []string{"serve", "--scope", "note=a", "--scope", "note=b"}, `scope "note" given twice`},
		{"scope without tokens", []string{"serve", "--scope", "note=owner"}, "a scope needs authentication"},
		{"scope on a kind not served", []string{"serve", "--kind", "a", "--scope", "b=owner", "--tokens", badTokens}, `scope for kind "b", which is not served`},
		{"scope on a reserved field", []string{"serve", "--scope", "note=_x", "--tokens", badTokens}, `bad field "_x"`},
		{"log format", []string{"serve", "--log-format", "xml"}, `bad log format "xml"`},
		{"log level", []string{"serve", "--log-level", "loud"}, `bad log level "loud"`},
		{"bad address", []string{"serve", "--http", "localhost"}, `bad HTTP address "localhost"`},
		{"bad duration", []string{"serve", "--shutdown-timeout", "soon"}, `invalid argument "soon"`},
		{"missing tokens file", []string{"serve", "--tokens", missing}, "no such file"},
		{"bad tokens file", []string{"serve", "--tokens", badTokens}, "tokens file line 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			stdout, stderr, code := runCLI(t, c.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Fatalf("stderr lacks %q:\n%s", c.want, stderr)
			}
			if _, err := os.Stat(filepath.Join(workDir(t), "offsync.db")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("a database was created on a usage error (%v)", err)
			}
		})
	}
	// Several mistakes are named at once.
	_, stderr, code := runCLI(t, "serve", "--kind", "Bad", "--log-format", "xml", "--log-level", "loud")
	if code != 2 || !strings.Contains(stderr, `"Bad"`) || !strings.Contains(stderr, "xml") || !strings.Contains(stderr, "loud") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestServeFailures(t *testing.T) {
	// A port in use is a failure of the work (exit 1), not a usage error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, stderr, code := runCLI(t, "serve", "--http", ln.Addr().String())
	if code != 1 || !strings.Contains(stderr, "listen on "+ln.Addr().String()) {
		t.Fatalf("port in use: exit %d\n%s", code, stderr)
	}
	_, stderr, code = runCLI(t, "serve", "--db", filepath.Join(t.TempDir(), "no", "such", "dir", "x.db"))
	if code != 1 || !strings.Contains(stderr, "open the sqlite store") {
		t.Fatalf("unreachable database: exit %d\n%s", code, stderr)
	}
}

func TestVersionAndHelp(t *testing.T) {
	stdout, _, code := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "offsync ") || !strings.Contains(stdout, "protocol 1") {
		t.Fatalf("version: %d %q", code, stdout)
	}
	stdout, _, code = runCLI(t, "version", "--json")
	var v struct {
		Version  string
		Protocol int
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &v) != nil || v.Protocol != 1 || v.Version == "" {
		t.Fatalf("version --json: %d %q", code, stdout)
	}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"version", "--help"}} {
		stdout, _, code := runCLI(t, args...)
		if code != 0 || !strings.Contains(stdout, "Examples:") {
			t.Fatalf("%v: exit %d, no examples:\n%s", args, code, stdout)
		}
	}
	stdout, _, code = runCLI(t, "completion", "bash")
	if code != 0 || !strings.Contains(stdout, "__start_offsync") {
		t.Fatalf("completion bash: exit %d\n%.200s", code, stdout)
	}
	if _, stderr, code := runCLI(t, "nosuch"); code != 2 || !strings.Contains(stderr, `unknown command "nosuch"`) {
		t.Fatalf("unknown command: exit %d\n%s", code, stderr)
	}
}

// The flag form serves the same contract over Postgres: the conformance
// checker passes against `offsync serve --store postgres`.
func TestServePostgres(t *testing.T) {
	dsn := pgtest.New(t)
	tokens := writeTokens(t, "one alice\ntwo bob\n")
	p := startServe(t, "--store", "postgres", "--dsn", dsn, "--kind", "conformance", "--tokens", tokens, "--scope", "conformance=owner")
	if !strings.Contains(p.Stderr(), "store=postgres") {
		t.Errorf("the log does not name the postgres store:\n%s", p.Stderr())
	}
	out, errOut, code := runCLI(t, "conformance", "--transport", "rest", "--url", p.URL, "--token", "one", "--token2", "two")
	if code != 0 || strings.Contains(out, "FAIL") {
		t.Fatalf("exit %d against offsync serve --store postgres\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "offsync.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a SQLite file was created for a postgres server (%v)", err)
	}
	// --store postgres without --dsn is a usage error.
	if _, stderr, code := runCLI(t, "serve", "--store", "postgres"); code != 2 || !strings.Contains(stderr, "--store postgres needs --dsn") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
