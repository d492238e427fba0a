package bench

import (
	"context"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/internal/pgtest"
)

// TestRunEveryTransportAndStore runs every scenario at smoke sizes on every
// registered transport and on both authority stores (every pair: Full), with the workers as
// separate processes, and checks that every cell produced every figure.
// Without Postgres (no server binaries, no OFFSYNC_POSTGRES_DSN) it runs
// on SQLite alone and says so loudly, except under CI=true, where it fails.
func TestRunEveryTransportAndStore(t *testing.T) {
	stores := Stores()
	if err := pgtest.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Postgres is required when CI=true: %v", err)
		}
		t.Logf("SKIPPING THE POSTGRES STORE, POSTGRES IS NOT AVAILABLE: %v", err)
		stores = []string{StoreSQLite}
	}
	sizes := QuickSizes()
	sizes.FleetDuration, sizes.SyncInterval = 600*time.Millisecond, 200*time.Millisecond
	var progress strings.Builder
	rep, err := Run(context.Background(), Config{
		Command: workerCommand(), Dir: t.TempDir(), Runs: 1, Quick: true, Full: true, Sizes: sizes,
		Transports: []string{"all"}, Stores: stores, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	if !slices.Equal(rep.Transports, Transports()) || !slices.Equal(rep.Stores, stores) || !rep.Quick {
		t.Errorf("report: transports %v stores %v quick %v", rep.Transports, rep.Stores, rep.Quick)
	}
	if !slices.Contains(rep.Transports, DefaultTransport) {
		t.Errorf("transports %v lack %s", rep.Transports, DefaultTransport)
	}
	// Every figure of every cell, with no verdict (a quick run).
	seen := map[string]bool{}
	for _, row := range rep.Rows {
		seen[row.Scenario+"|"+row.Transport+"|"+row.Store] = true
		if math.IsNaN(row.Value) || len(row.Runs) == 0 && !strings.Contains(row.Metric, "Postgres / SQLite") {
			t.Errorf("%s %s %s %s: no figure", row.Scenario, row.Transport, row.Store, row.Metric)
		}
		if row.Status != "" {
			t.Errorf("%s %s %s %s: verdict %q in a quick run", row.Scenario, row.Transport, row.Store, row.Metric, row.Status)
		}
		if row.Scenario == ScenarioReplicas && row.Metric == "failed syncs" && row.Value != 0 {
			t.Errorf("%s/%s: %v failed syncs", row.Transport, row.Store, row.Value)
		}
	}
	for _, scenario := range Scenarios() {
		if clientOnly(scenario) {
			if !seen[scenario+"||"] {
				t.Errorf("%s: no rows", scenario)
			}
			continue
		}
		for _, store := range stores {
			for _, tr := range rep.Transports {
				if !seen[scenario+"|"+tr+"|"+store] {
					t.Errorf("%s on %s/%s: no rows", scenario, tr, store)
				}
			}
		}
	}
	if t.Failed() {
		t.Logf("progress:\n%s", progress.String())
	}
}
