package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/metrics"
	"github.com/offsync/offsync/server"
)

// A program exports its replica's figures on its own registry, and the
// authority's with Handler (offsync serve mounts it at /metrics).
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-example-")
	defer os.RemoveAll(dir)
	authStore, _ := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), nil)
	defer authStore.Close()
	replicaStore, _ := sqlite.Open(ctx, filepath.Join(dir, "replica.db"), nil)
	defer replicaStore.Close()

	notes := core.Documents("note")
	authority, _ := server.New(ctx, authStore, &server.Options{Tables: []core.Table{notes}})
	defer authority.Close()
	eng, _ := core.NewEngine(ctx, replicaStore, authority, &core.Options{Tables: []core.Table{notes}})
	defer eng.Close()
	_ = core.DocsFor(eng, notes).Put(ctx, "n1", map[string]any{"title": "hello"})
	_ = core.DocsFor(eng, notes).Put(ctx, "n2", map[string]any{"title": "world"})
	_, _ = eng.Sync(ctx)

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewEngineCollector(eng))
	show := func(body, prefix string) {
		sc := bufio.NewScanner(strings.NewReader(body))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), prefix) {
				fmt.Println(sc.Text())
			}
		}
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	show(rec.Body.String(), "offsync_replica_ops_total")

	rec = httptest.NewRecorder()
	metrics.Handler(authority).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	show(rec.Body.String(), "offsync_server_pushed_ops_total")
	// Output:
	// offsync_replica_ops_total{event="dead",kind="note"} 0
	// offsync_replica_ops_total{event="failed",kind="note"} 0
	// offsync_replica_ops_total{event="kept",kind="note"} 0
	// offsync_replica_ops_total{event="pulled",kind="note"} 2
	// offsync_replica_ops_total{event="pushed",kind="note"} 2
	// offsync_server_pushed_ops_total{kind="note",outcome="applied",transport="direct"} 2
	// offsync_server_pushed_ops_total{kind="note",outcome="conflict",transport="direct"} 0
	// offsync_server_pushed_ops_total{kind="note",outcome="not_found",transport="direct"} 0
	// offsync_server_pushed_ops_total{kind="note",outcome="rejected",transport="direct"} 0
	// offsync_server_pushed_ops_total{kind="note",outcome="retry",transport="direct"} 0
	// offsync_server_pushed_ops_total{kind="note",outcome="skipped",transport="direct"} 0
}
