package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsync/offsync/internal/bench"
)

// TestBenchQuick runs every scenario at smoke sizes through the built binary
// (server and clients as separate processes) and checks the table on stdout
// and the JSON report: every figure, and no verdict (tiny sizes prove
// nothing).
func TestBenchQuick(t *testing.T) {
	jsonPath := filepath.Join(workDir(t), "bench.json")
	stdout, stderr, code := runCLI(t, "bench", "--quick", "--json", jsonPath)
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}

	// The table: a header, then one line per figure, every scenario present.
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "WORKLOAD") || !strings.Contains(lines[0], "VERDICT") {
		t.Fatalf("no table header:\n%s", stdout)
	}
	seen := map[string]bool{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			break // the machine line follows a blank line
		}
		seen[f[0]] = true
		for _, verdict := range []string{" met ", " missed ", " info "} {
			if strings.Contains(l, verdict) {
				t.Errorf("a quick run printed a verdict: %q", l)
			}
		}
	}
	for _, s := range bench.Scenarios() {
		if !seen[s] {
			t.Errorf("scenario %s missing from the table:\n%s", s, stdout)
		}
	}
	if !strings.Contains(stdout, "QUICK") {
		t.Errorf("the table does not say it is a quick run:\n%s", stdout)
	}

	// The JSON report: every scenario, every figure a number, no verdict.
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Quick     bool     `json:"quick"`
		Runs      int      `json:"runs"`
		Scenarios []string `json:"scenarios"`
		Machine   struct {
			CPUs int `json:"cpus"`
		} `json:"machine"`
		Results []struct {
			Scenario  string     `json:"scenario"`
			Transport string     `json:"transport"`
			Store     string     `json:"store"`
			Metric    string     `json:"metric"`
			Value     *float64   `json:"value"`
			Runs      []*float64 `json:"runs"`
			Target    string     `json:"target"`
			Status    string     `json:"status"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("bad JSON report: %v\n%s", err, b)
	}
	if !rep.Quick || rep.Runs != 1 || rep.Machine.CPUs < 1 {
		t.Errorf("report header: quick %v runs %d cpus %d", rep.Quick, rep.Runs, rep.Machine.CPUs)
	}
	inJSON := map[string]int{}
	for _, r := range rep.Results {
		inJSON[r.Scenario]++
		if r.Value == nil || math.IsNaN(*r.Value) {
			t.Errorf("%s %s: no value", r.Scenario, r.Metric)
		}
		if len(r.Runs) != 1 {
			t.Errorf("%s %s: %d runs, want 1", r.Scenario, r.Metric, len(r.Runs))
		}
		if r.Status != "" {
			t.Errorf("%s %s: verdict %q in a quick run", r.Scenario, r.Metric, r.Status)
		}
		want := "rest"
		switch {
		case r.Scenario == bench.ScenarioLimits || r.Scenario == bench.ScenarioLocalWrite:
			want = "" // measured on the client alone
		case strings.HasPrefix(r.Transport, "fastest="):
			want = "fastest=rest"
		}
		if r.Transport != want || (want != "" && r.Store != bench.StoreSQLite) {
			t.Errorf("%s %s: on %q/%q, want the default rest/sqlite", r.Scenario, r.Metric, r.Transport, r.Store)
		}
	}
	for _, s := range bench.Scenarios() {
		if inJSON[s] == 0 {
			t.Errorf("scenario %s missing from the JSON report", s)
		}
	}
	// The many-replicas scenario runs with no failed sync.
	for _, r := range rep.Results {
		if r.Scenario == bench.ScenarioReplicas && r.Metric == "failed syncs" && (r.Value == nil || *r.Value != 0) {
			t.Errorf("failed syncs: %v", r.Value)
		}
	}
}

// TestBenchOnlyJSON runs one scenario with the JSON report on stdout.
func TestBenchOnlyJSON(t *testing.T) {
	stdout, stderr, code := runCLI(t, "bench", "--quick", "--only", "local-write", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\nstderr:\n%s", code, stderr)
	}
	var rep struct {
		Scenarios []string `json:"scenarios"`
		Results   []struct {
			Scenario string `json:"scenario"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, stdout)
	}
	if strings.Join(rep.Scenarios, ",") != bench.ScenarioLocalWrite || len(rep.Results) == 0 {
		t.Errorf("scenarios %v with %d results, want [local-write]", rep.Scenarios, len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Scenario != bench.ScenarioLocalWrite {
			t.Errorf("unexpected scenario %s", r.Scenario)
		}
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--only", "nope"},
		{"bench", "--transport", "carrier-pigeon"},
		{"bench", "--transport", "all,rest"},
		{"bench", "--store", "csv"},
		{"bench", "--format", "xml"},
		{"bench", "--runs", "-1"},
		{"bench", "--runs", "x"},
		{"bench", "extra"},
		{"bench-worker"},
		{"bench-worker", "--spec", "{not json"},
	} {
		_, stderr, code := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("offsync %s: exit %d, want %d\nstderr: %s", strings.Join(args, " "), code, exitUsage, stderr)
		}
	}
	// A well-formed spec with an unknown role is a failure of the work.
	_, stderr, code := runCLI(t, "bench-worker", "--spec", `{"role":"nope"}`)
	if code != exitFailure || !strings.Contains(stderr, "nope") {
		t.Errorf("unknown role: exit %d, stderr %q", code, stderr)
	}
}
