package offsync_test

import (
	"bufio"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/metrics"
)

// metricsServer serves kind note with payloads at most 2 levels deep (a
// deeper one is rejected for good), a user's token (tok-1) and an
// administrator's; extra is more of the server section.
func metricsServer(t *testing.T, dir, extra string) string {
	t.Helper()
	endpoints := serveWith(t, dir, `store: {dsn: `+filepath.Join(dir, "server.db")+`}
server:
  http: 127.0.0.1:0
  kinds: [note]
  max_depth: 2
  tokens:
    - {token: tok-1, principal: alice}
    - {token: `+dashboardAdminToken+`, principal: ops, attrs: {role: admin}}
`+extra)
	return strings.TrimSuffix(endpoints["rest"], "/")
}

// scrape reads the Prometheus text format: the value of each series, keyed
// by its name and labels as printed (labels sorted by name).
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	status, body := httpGet(t, base+"/metrics", dashboardAdminToken)
	if status != 200 {
		t.Fatalf("GET /metrics as the administrator: %d %.300q", status, body)
	}
	return parseText(t, body)
}

func parseText(t *testing.T, body string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// A scripted sync through `offsync serve` over REST, then a scrape of
// /metrics: replica a creates n1; replica b creates n1 too (a conflict,
// which AutoPreserve resolves with a merge pushed back) and a payload too
// deep (rejected for good). The counts are exact.
func TestServeMetricsCountsAScriptedSync(t *testing.T) {
	dir := t.TempDir()
	base := metricsServer(t, dir, "")
	ctx := context.Background()
	a, err := offsync.Open(ctx, clientConfig(t, dir, "a.db", base+"/", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := offsync.Open(ctx, clientConfig(t, dir, "b.db", base+"/", ""))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tbl, err := a.Table("note")
	if err != nil {
		t.Fatal(err)
	}
	notes := tbl.(*core.DocumentTable)
	if err := core.DocsFor(a, notes).Put(ctx, "n1", map[string]any{"title": "a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatalf("sync a: %v", err)
	}
	bd := core.DocsFor(b, notes)
	if err := bd.Put(ctx, "n1", map[string]any{"body": "b"}); err != nil {
		t.Fatal(err)
	}
	if err := bd.Put(ctx, "deep", map[string]any{"x": map[string]any{"y": map[string]any{"z": 1}}}); err != nil {
		t.Fatal(err)
	}
	st, err := b.Sync(ctx)
	if err != nil {
		t.Logf("sync b: %v", err)
	}
	if st.Conflicts != 1 {
		t.Fatalf("sync b: %+v, want one conflict", st)
	}

	m := scrape(t, base)
	series := func(name, labels string) float64 {
		v, ok := m[name+"{"+labels+"}"]
		if !ok {
			t.Errorf("no series %s{%s}", name, labels)
		}
		return v
	}
	const pushed = "offsync_server_pushed_ops_total"
	want := map[string]float64{
		// a's n1, then b's merge of n1 (the resolution push).
		`kind="note",outcome="applied",transport="rest"`: 2,
		// b's n1, a create over a's.
		`kind="note",outcome="conflict",transport="rest"`: 1,
		// b's deep payload.
		`kind="note",outcome="rejected",transport="rest"`:  1,
		`kind="note",outcome="skipped",transport="rest"`:   0,
		`kind="note",outcome="not_found",transport="rest"`: 0,
	}
	for labels, w := range want {
		if got := series(pushed, labels); got != w {
			t.Errorf("%s{%s} = %v, want %v", pushed, labels, got, w)
		}
	}
	// a's pull serves n1 (as a wrote it), b's serves n1 (as merged).
	if got := series("offsync_server_pulled_rows_total", `kind="note",transport="rest"`); got != 2 {
		t.Errorf("pulled rows %v, want 2", got)
	}
	// Two pull pages and three push batches (a's, b's, b's resolution).
	if got := series("offsync_server_pull_page_seconds_count", `kind="note",transport="rest"`); got != 2 {
		t.Errorf("pull pages %v, want 2", got)
	}
	if got := series("offsync_server_push_batch_seconds_count", `transport="rest"`); got != 3 {
		t.Errorf("push batches %v, want 3", got)
	}
	if got := series("offsync_server_requests_total", `method="push",transport="rest"`); got != 3 {
		t.Errorf("push requests %v, want 3", got)
	}
	if got := series("offsync_server_subscribers", `transport="rest"`); got != 0 {
		t.Errorf("subscribers %v, want 0", got)
	}

	// The replica's side, through its collector on a registry of the
	// program's: b's conflict, its rejected op (dead, still in the outbox)
	// and its merge pushed.
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewEngineCollector(b))
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	rm := parseText(t, rec.Body.String())
	for s, w := range map[string]float64{
		`offsync_replica_conflicts_total{event="detected",kind="note"}`: 1,
		`offsync_replica_conflicts_total{event="resolved",kind="note"}`: 1,
		`offsync_replica_ops_total{event="dead",kind="note"}`:           1,
		`offsync_replica_ops_total{event="pushed",kind="note"}`:         1,
		`offsync_replica_outbox_ops{kind="note",state="dead"}`:          1,
		`offsync_replica_outbox_ops{kind="note",state="pending"}`:       0,
		`offsync_replica_syncs_total`:                                   1,
		`offsync_replica_stats_error`:                                   0,
	} {
		if got, ok := rm[s]; !ok || got != w {
			t.Errorf("replica b: %s = %v (present %v), want %v", s, got, ok, w)
		}
	}
	if _, ok := rm["offsync_replica_last_sync_timestamp_seconds"]; !ok {
		t.Error("replica b: no last sync time")
	}
}

// /metrics needs an administrator's token (401 without, 403 with a user's),
// and server.metrics: false removes it.
func TestServeMetricsNeedsAnAdministrator(t *testing.T) {
	dir := t.TempDir()
	base := metricsServer(t, dir, "")
	if status, body := httpGet(t, base+"/metrics", ""); status != 401 || strings.Contains(body, "offsync_") {
		t.Errorf("GET /metrics without a token: %d %.200q, want 401 and no figures", status, body)
	}
	if status, body := httpGet(t, base+"/metrics", "tok-1"); status != 403 || strings.Contains(body, "offsync_") {
		t.Errorf("GET /metrics with a user's token: %d %.200q, want 403 and no figures", status, body)
	}
	if status, body := httpGet(t, base+"/metrics", dashboardAdminToken); status != 200 || !strings.Contains(body, "offsync_server_requests_total") {
		t.Errorf("GET /metrics as the administrator: %d %.300q", status, body)
	}
	offDir := filepath.Join(dir, "off")
	if err := os.Mkdir(offDir, 0o755); err != nil {
		t.Fatal(err)
	}
	off := metricsServer(t, offDir, "  metrics: false\n")
	if status, body := httpGet(t, off+"/metrics", dashboardAdminToken); status != 404 {
		t.Errorf("server.metrics false: GET /metrics: %d %.200q, want 404", status, body)
	}
}
