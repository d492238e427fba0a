package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestManualStrategyFromConfig: `conflicts.default: manual` in a client
// config puts every conflict in the inbox; the sync says where to look, and
// `offsync conflicts resolve` settles it.
func TestManualStrategyFromConfig(t *testing.T) {
	t.Parallel()
	srv := startConfigServe(t)
	writeClientConfig(t, srv.URL, "conflicts: {default: manual}\n")
	mustRun(t, 0, "local", "put", "note", "n1", `{"title":"v1"}`)
	mustRun(t, 0, "sync")

	// Replica B changes n1 on the server.
	dirB := t.TempDir()
	writeFile(t, dirB, "b.yaml", fmt.Sprintf("store: {dsn: b.db}\ntransport: {url: %s, token: \"${OFFSYNC_TEST_TOKEN}\"}\ntables: {note: {}}\n", srv.URL))
	for _, args := range [][]string{{"sync"}, {"local", "put", "note", "n1", `{"title":"from B"}`}, {"sync"}} {
		if o, e, code := runCLIIn(t, dirB, append(args, "-c", "b.yaml")...); code != 0 {
			t.Fatalf("replica B %v: %d\n%s%s", args, code, o, e)
		}
	}
	mustRun(t, 0, "local", "put", "note", "n1", `{"title":"from A"}`)
	out, errOut, _ := runCLI(t, "sync")
	if !strings.Contains(out, "offsync conflicts list") {
		t.Errorf("a sync that deferred a conflict gives no hint:\n%s%s", out, errOut)
	}
	js, _ := mustRun(t, 0, "conflicts", "list", "--json")
	var list []conflictJSON
	if err := json.Unmarshal([]byte(js), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "n1" {
		t.Fatalf("inbox under manual: %s", js)
	}
	mustRun(t, 0, "conflicts", "resolve", list[0].OpID, "--accept", "server")
	mustRun(t, 0, "sync")
	if out, _ := mustRun(t, 0, "conflicts", "list"); strings.TrimSpace(out) != "no conflicts" {
		t.Errorf("after resolve: %q", out)
	}
	if out, _ := mustRun(t, 0, "local", "get", "note", "n1"); strings.TrimSpace(out) != `{"title":"from B"}` {
		t.Errorf("accepted the server's version, got %q", out)
	}
}

// TestSyncSaysWhatTheURLIs: a URL that is not an offsync server's base (a
// wrong prefix, a web page) is named as such, in one line, without the
// page's body.
func TestSyncSaysWhatTheURLIs(t *testing.T) {
	t.Parallel()
	srv := startConfigServe(t)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><html><body><h1>Welcome to our shop</h1></body></html>")
	}))
	t.Cleanup(page.Close)
	for _, tc := range []struct{ url, want string }{
		{srv.URL + "/api/v1", srv.URL + "/api/v1 does not answer GET /health as an offsync server: 404"},
		{page.URL, page.URL + " does not answer GET /health as an offsync server: 200 OK (text/html"},
	} {
		writeClientConfig(t, tc.url, "")
		mustRun(t, 0, "local", "put", "note", "n1", `{"title":"v1"}`)
		_, errOut, code := runCLI(t, "sync")
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("sync against %s: exit %d, want 1 and %q:\n%s", tc.url, code, tc.want, errOut)
		}
		if strings.Contains(errOut, "unknown kind") || strings.Contains(errOut, "<html") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("sync against %s: the error is not one clear line:\n%s", tc.url, errOut)
		}
	}
}

// TestSyncErrorsSayEachThingOnce: with the server down, a sync of two kinds
// prints one line, one "offsync:" prefix; the status that follows shows the
// unanswered op for what it is; a dead letter's error does not repeat
// itself, and the sync points to the dead letters.
func TestSyncErrorsSayEachThingOnce(t *testing.T) {
	t.Parallel()
	srv := startConfigServe(t)
	url := srv.URL
	if code := srv.Stop(t); code != 0 {
		t.Fatalf("serve exited with %d", code)
	}
	writeClientConfig(t, url, "")
	mustRun(t, 0, "local", "put", "note", "n1", `{"title":"v1"}`)
	_, errOut, code := runCLI(t, "sync")
	if code != 1 || strings.Count(errOut, "\n") != 1 || strings.Count(errOut, "offsync:") != 1 ||
		!strings.Contains(errOut, "cannot reach the server at "+url) || !strings.Contains(errOut, "1 op stays in the outbox") {
		t.Errorf("sync with the server down: exit %d, want 1 and one line:\n%s", code, errOut)
	}
	out, _ := mustRun(t, 0, "status")
	if strings.Contains(out, "IN-FLIGHT") || !strings.Contains(out, "UNANSWERED") || !strings.Contains(out, "the next sync sends it again") {
		t.Errorf("status after a failed sync:\n%s", out)
	}

	// A dead letter: the server does not serve the kind.
	srvDir := t.TempDir()
	writeFile(t, srvDir, "server.yaml", "store: {dsn: s.db}\nserver: {kinds: [note]}\n")
	up := startServeIn(t, srvDir, "--config", "server.yaml")
	writeFile(t, workDir(t), "dead.yaml", fmt.Sprintf("store: {dsn: d.db}\ntransport: {url: %s}\ntables: {note: {}, task: {}}\n", up.URL))
	mustRun(t, 0, "local", "put", "task", "t1", `{"a":1}`, "-c", "dead.yaml")
	out, errOut, code = runCLI(t, "sync", "-c", "dead.yaml")
	if code != 1 || !strings.Contains(out, "offsync dead-letters list") {
		t.Errorf("a sync that made a dead letter: exit %d, no hint:\n%s%s", code, out, errOut)
	}
	list, _ := mustRun(t, 0, "dead-letters", "list", "-c", "dead.yaml")
	for _, text := range []string{errOut, list} {
		if strings.Contains(text, "rejected: rejected") || strings.Count(text, "offsync:") > 1 {
			t.Errorf("an error repeats itself:\n%s", text)
		}
	}
}

// TestPulledCountsOnlyOthersChanges: a replica's own pushes, which the pull
// reads back, are not counted as pulled.
func TestPulledCountsOnlyOthersChanges(t *testing.T) {
	t.Parallel()
	srv := startConfigServe(t)
	writeClientConfig(t, srv.URL, "")
	for i := range 3 {
		mustRun(t, 0, "local", "put", "note", fmt.Sprintf("n%d", i), `{"title":"x"}`)
	}
	out, _ := mustRun(t, 0, "sync")
	if !strings.Contains(out, "pushed 3, pulled 0,") || !strings.Contains(out, "3 own pushes read back") {
		t.Errorf("own pushes counted as pulled:\n%s", out)
	}
}

// TestExitCodesAreDocumented: the root help lists the exit codes.
func TestExitCodesAreDocumented(t *testing.T) {
	out, _ := mustRun(t, 0, "--help")
	for _, want := range []string{"Exit codes", "0  success", "1  the work failed", "2  a mistake in the command line"} {
		if !strings.Contains(out, want) {
			t.Errorf("offsync --help lacks %q", want)
		}
	}
}
