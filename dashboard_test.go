package offsync_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server/ui"
)

const dashboardAdminToken = "admin-secret-1"

// dashboardServer serves kind note with a user's token (tok-1, the one
// clientConfig uses) and an administrator's; extra is more of the server
// section. It returns the HTTP listener's base URL, without a slash.
func dashboardServer(t *testing.T, dir, extra string) string {
	t.Helper()
	endpoints := serveWith(t, dir, `store: {dsn: `+filepath.Join(dir, "server.db")+`}
server:
  http: 127.0.0.1:0
  kinds: [note]
  tokens:
    - {token: tok-1, principal: alice}
    - {token: `+dashboardAdminToken+`, principal: ops, attrs: {role: admin}}
`+extra)
	return strings.TrimSuffix(endpoints["rest"], "/")
}

func httpGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// offsync serve mounts the dashboard at /ui: without an administrator's
// token the page is the sign-in form with a 401 and its API answers 401;
// server.ui: false removes it.
func TestServeDashboardNeedsAnAdministrator(t *testing.T) {
	dir := t.TempDir()
	base := dashboardServer(t, dir, "")
	for _, path := range []string{"/ui", "/ui/", "/ui/api/snapshot", "/ui/api/events"} {
		for _, tok := range []string{"", "tok-1"} {
			status, body := httpGet(t, base+path, tok)
			want := http.StatusUnauthorized
			if tok != "" {
				want = http.StatusForbidden
			}
			if status != want || strings.Contains(body, `"kinds":`) {
				t.Errorf("GET %s with token %q: %d %.200q, want %d and no figures", path, tok, status, body, want)
			}
		}
	}
	if status, body := httpGet(t, base+"/ui", ""); !strings.Contains(body, `id="signin"`) {
		t.Errorf("GET /ui without a token: %d, not the sign-in page: %.200q", status, body)
	}
	status, body := httpGet(t, base+"/ui/api/snapshot", dashboardAdminToken)
	var snap ui.Snapshot
	if err := json.Unmarshal([]byte(body), &snap); status != http.StatusOK || err != nil ||
		len(snap.Kinds) != 1 || snap.Kinds[0].Kind != "note" {
		t.Fatalf("snapshot as the administrator: %d %v %q", status, err, body)
	}

	offDir := filepath.Join(dir, "off")
	if err := os.Mkdir(offDir, 0o755); err != nil {
		t.Fatal(err)
	}
	off := dashboardServer(t, offDir, "  ui: false\n")
	for _, path := range []string{"/ui", "/ui/api/snapshot"} {
		if status, body := httpGet(t, off+path, dashboardAdminToken); status != http.StatusNotFound {
			t.Errorf("server.ui false: GET %s: %d %.200q, want 404", path, status, body)
		}
	}
}

// chromiumPath is Debian's chromium, which scripts/setup installs.
const chromiumPath = "/usr/bin/chromium"

// The dashboard in a real browser: sign in with the administrator's token,
// see the kinds table, then a write through a replica (a real engine over
// REST) changes the row count on the page without a reload.
func TestDashboardInBrowser(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := fmt.Sprintf("the browser test of the dashboard needs Debian's chromium at %s (%v): run scripts/setup, or apt-get install chromium", chromiumPath, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPED, NOT PASSED: " + msg)
	}
	dir := t.TempDir()
	require := func(err error, what string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	base := dashboardServer(t, dir, "")
	ctx := t.Context()

	// A replica writes one note before the page opens.
	eng, err := offsync.Open(ctx, clientConfig(t, dir, "replica.db", base+"/", ""))
	require(err, "open the replica")
	defer eng.Close()
	notes, _ := eng.Table("note")
	docs := core.DocsFor(eng, notes.(*core.DocumentTable))
	require(docs.Put(ctx, "n1", map[string]any{"title": "first"}), "write n1")
	if st, err := eng.Sync(ctx); err != nil || st.Pushed != 1 {
		t.Fatalf("sync: %+v %v", st, err)
	}

	var chromeOut bytes.Buffer
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium-profile")),
		chromedp.WindowSize(1200, 900),
		chromedp.CombinedOutput(&chromeOut),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	bctx, cancelTimeout := context.WithTimeout(bctx, 3*time.Minute) // a hung browser fails instead of stalling
	defer cancelTimeout()
	defer func() {
		if t.Failed() {
			t.Logf("chromium's output:\n%s", chromeOut.String())
		}
	}()

	// Without a token the browser gets the 401 and the sign-in form.
	resp, err := chromedp.Run(bctx, chromedp.NavigateResponse(base+"/ui"))
	require(err, "open /ui")
	if resp.Status != http.StatusUnauthorized {
		t.Fatalf("/ui without a token: HTTP %d in the browser, want 401", resp.Status)
	}
	require(chromedp.Do(bctx,
		chromedp.WaitVisible(chromedp.ID("signin")),
		chromedp.SendKeys(chromedp.ID("token"), dashboardAdminToken),
		chromedp.Click(chromedp.ID("signin-button")),
	), "sign in")

	// The kinds table shows note and its one row.
	rowsOf := `document.querySelector('#kinds tr[data-kind="note"] td.rows')`
	_, err = chromedp.Run(bctx, chromedp.Poll[chromedp.Void](rowsOf+`?.textContent === "1"`))
	if err != nil {
		text, _ := chromedp.Run(bctx, chromedp.TextContent(chromedp.ID("dash")))
		t.Fatalf("the kinds table never showed note with 1 row: %v; the page: %q", err, text)
	}
	_, err = chromedp.Run(bctx, chromedp.Poll[chromedp.Void](`document.getElementById("status").textContent === "live"`))
	require(err, "the live stream")
	// A mark that a reload would wipe.
	_, err = chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](`window.offsyncTestMark = "kept"`))
	require(err, "set the mark")

	// A write through the replica: the page follows without a reload.
	require(docs.Put(ctx, "n2", map[string]any{"title": "second"}), "write n2")
	if st, err := eng.Sync(ctx); err != nil || st.Pushed != 1 {
		t.Fatalf("sync: %+v %v", st, err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[chromedp.Void](rowsOf+`?.textContent === "2"`)); err != nil {
		text, _ := chromedp.Run(bctx, chromedp.TextContent(chromedp.ID("dash")))
		t.Fatalf("the row count never became 2: %v; the page: %q", err, text)
	}
	_, err = chromedp.Run(bctx, chromedp.Poll[chromedp.Void](
		`[...document.querySelectorAll("#changes li")].some(li => li.textContent.includes("note/n2"))`))
	require(err, "n2 in the recent changes")
	mark, err := chromedp.Run(bctx, chromedp.Evaluate[string](`window.offsyncTestMark || "gone"`))
	require(err, "read the mark")
	if mark != "kept" {
		t.Fatalf("the page was reloaded (mark %q)", mark)
	}
	applied, err := chromedp.Run(bctx, chromedp.TextContent(chromedp.CSS(`#kinds tr[data-kind="note"] td.applied`)))
	require(err, "read the applied ops")
	if applied != "2" {
		t.Errorf("applied ops of note on the page: %q, want 2", applied)
	}
	// The token is in no URL the page used.
	href, err := chromedp.Run(bctx, chromedp.Evaluate[string](`location.href`))
	require(err, "read the URL")
	if strings.Contains(href, dashboardAdminToken) {
		t.Errorf("the token is in the page's URL %q", href)
	}

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	require(err, "screenshot")
	artifacts := os.Getenv("OFFSYNC_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	require(os.MkdirAll(artifacts, 0o755), "artifact directory")
	shot := filepath.Join(artifacts, "dashboard.png")
	require(os.WriteFile(shot, png, 0o644), "save the screenshot")
	t.Logf("screenshot of the dashboard: %s (set OFFSYNC_ARTIFACTS to keep it)", shot)
}

// A live stream of the dashboard ends with the server: shutdown does not
// wait for it (nor fail with requests still running).
func TestServeEndsDashboardStreams(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.ParseServer([]byte(`store: {dsn: `+filepath.Join(dir, "server.db")+`}
server:
  http: 127.0.0.1:0
  kinds: [note]
  shutdown_timeout: 2s
  tokens: [{token: `+dashboardAdminToken+`, principal: ops, attrs: {role: admin}}]
`), filepath.Join(dir, "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	stop, endpoints := startServe(t, cfg)
	req, _ := http.NewRequest(http.MethodGet, endpoints["rest"]+"ui/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+dashboardAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		_ = stop()
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "event: snapshot\n" {
		_ = stop()
		t.Fatalf("first line of the stream: %q %v", line, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve with a dashboard stream open: %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Logf("the stream ended with %v", err)
	}
}
