package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
)

func TestSelectScenarios(t *testing.T) {
	got, err := selectScenarios(nil)
	if err != nil || !slices.Equal(got, Scenarios()) {
		t.Fatalf("all: %v, %v", got, err)
	}
	// Run order, whatever the order asked.
	got, err = selectScenarios([]string{ScenarioRealtime, ScenarioIncremental})
	if err != nil || !slices.Equal(got, []string{ScenarioIncremental, ScenarioRealtime}) {
		t.Fatalf("two: %v, %v", got, err)
	}
	// A ratio target brings the limits along.
	got, err = selectScenarios([]string{ScenarioPush})
	if err != nil || !slices.Equal(got, []string{ScenarioLimits, ScenarioPush}) {
		t.Fatalf("push: %v, %v", got, err)
	}
	if _, err := selectScenarios([]string{"pull-10"}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("unknown scenario: %v", err)
	}
}

func TestRunBadConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := Run(ctx, Config{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("no command: %v", err)
	}
	if _, err := Run(ctx, Config{Command: []string{"x"}, Runs: -1}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("negative runs: %v", err)
	}
	if _, err := Run(ctx, Config{Command: []string{"x"}, Only: []string{"nope"}}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("unknown scenario: %v", err)
	}
}

func TestWorkerBadSpec(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := Worker(ctx, Spec{Role: "nope"}, strings.NewReader(""), &out); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("unknown role: %v", err)
	}
	if err := Worker(ctx, Spec{Role: RoleServer}, strings.NewReader(""), &out); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("server without db: %v", err)
	}
	if err := Worker(ctx, Spec{Role: RoleFleet, URL: "http://127.0.0.1:1"}, strings.NewReader(""), &out); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("fleet without sizes: %v", err)
	}
	if out.Len() != 0 {
		t.Errorf("a failed worker printed %q", out.String())
	}
}

func TestSeed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "seed.db")
	if err := Seed(ctx, path, 25_000); err != nil {
		t.Fatal(err)
	}
	if err := Seed(ctx, path, 10); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("seeding over an existing file: %v", err)
	}
	if err := Seed(ctx, filepath.Join(t.TempDir(), "neg.db"), -1); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("negative size: %v", err)
	}
	st, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Register(ctx, Items, Tasks); err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		// The whole feed, in order, versions strictly increasing.
		var n int
		var after core.Cursor
		for {
			recs, err := tx.Changes(ctx, core.ChangesQuery{Kind: "item", After: after, Limit: 1000})
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				break
			}
			for _, r := range recs {
				if !after.Before(r.UpdatedAt, r.ID) {
					t.Fatalf("feed out of order at %s", r.ID)
				}
				after = core.Cursor{UpdatedAt: r.UpdatedAt, ID: r.ID}
				n++
			}
		}
		if n != 25_000 {
			t.Errorf("feed has %d rows, want 25000", n)
		}
		rec, err := tx.Get(ctx, "item", "item-00012345")
		if err != nil {
			return err
		}
		var it Item
		if err := json.Unmarshal(rec.Data, &it); err != nil {
			return err
		}
		if it.Count != 12345 || it.Done || len(rec.Data) < 200 || len(rec.Data) > 230 {
			t.Errorf("row 12345: %s (%d bytes)", rec.Data, len(rec.Data))
		}
		// The next version stamps above every seeded row.
		v, err := tx.NextVersion(ctx, "item", after.UpdatedAt.Add(-1))
		if err != nil {
			return err
		}
		if !v.After(after.UpdatedAt) {
			t.Errorf("next version %v not after the last seeded %v", v, after.UpdatedAt)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRows(t *testing.T) {
	r := &runner{figures: map[string][]float64{
		"limits/decode_rps":  {300, 100, 200},
		"limits/insert_rps":  {100, 200, 300},
		"pull-100k/rps":      {80, 150, 240},  // ratios 0.8 0.75 0.8
		"pull-100k/rss_mb":   {90, 120, 110},  // median 110 > 100
		"local-write/ratio":  {0.4, 0.6, 0.5}, // median 0.5 >= 0.5
		"replicas/errors":    {0, 1, 0},       // median 0: met
		"realtime/p50_ms":    {12, 9, 11},     // median 11 > 10
		"incremental/ms":     {},              // no figure: missed
		"other/unrelated_ms": {1},
	}}
	rows := r.rows([]string{ScenarioLimits, ScenarioPull, ScenarioLocalWrite, ScenarioReplicas, ScenarioRealtime, ScenarioIncremental})
	get := func(scenario, metric string) Row {
		for _, row := range rows {
			if row.Scenario == scenario && row.Metric == metric {
				return row
			}
		}
		t.Fatalf("no row %s %s", scenario, metric)
		return Row{}
	}
	if row := get(ScenarioLimits, "JSON decode of the pulled pages"); row.Value != 200 || row.Status != StatusInfo {
		t.Errorf("decode: %+v", row)
	}
	if row := get(ScenarioPull, "pull / insert limit"); row.Value != 0.75 || row.Status != StatusMet ||
		!slices.Equal(row.Runs, []float64{0.8, 0.75, 0.8}) {
		t.Errorf("pull ratio: %+v", row)
	}
	if row := get(ScenarioPull, "client peak RSS"); row.Value != 110 || row.Status != StatusMissed || row.Target != "<= 100" {
		t.Errorf("rss: %+v", row)
	}
	if row := get(ScenarioLocalWrite, "writer / raw"); row.Value != 0.5 || row.Status != StatusMet {
		t.Errorf("local write: %+v", row)
	}
	if row := get(ScenarioReplicas, "failed syncs"); row.Value != 0 || row.Status != StatusMet {
		t.Errorf("errors: %+v", row)
	}
	if row := get(ScenarioRealtime, "commit to applied on B, p50"); row.Value != 11 || row.Status != StatusMissed {
		t.Errorf("realtime: %+v", row)
	}
	if row := get(ScenarioIncremental, "incremental sync"); !math.IsNaN(row.Value) || row.Status != StatusMissed {
		t.Errorf("incremental: %+v", row)
	}
	for _, row := range rows {
		if row.Scenario == ScenarioPush || row.Scenario == ScenarioPullLarge {
			t.Errorf("row of an unselected scenario: %+v", row)
		}
	}

	// The JSON form writes a missing figure as null; the table as "-".
	rep := &Report{Rows: rows, Runs: 3}
	var js, table bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Results []struct {
			Scenario string   `json:"scenario"`
			Value    *float64 `json:"value"`
		} `json:"results"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("%v\n%s", err, js.String())
	}
	if len(back.Results) != len(rows) {
		t.Fatalf("%d results in JSON, want %d", len(back.Results), len(rows))
	}
	for i, r := range back.Results {
		if (r.Value == nil) != math.IsNaN(rows[i].Value) || r.Value != nil && *r.Value != rows[i].Value {
			t.Errorf("%s %s: value %v in JSON, %v in the report", r.Scenario, rows[i].Metric, r.Value, rows[i].Value)
		}
	}
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "incremental sync") || strings.Count(table.String(), "\n") < len(rows)+1 {
		t.Errorf("table:\n%s", table.String())
	}
}

func TestFormatNum(t *testing.T) {
	cases := map[float64]string{
		0: "0", 7: "7", 0.756: "0.76", 12.34: "12.3", 123.4: "123", 1234.4: "1,234",
		1234567: "1,234,567", -98765: "-98,765", math.NaN(): "-",
	}
	for v, want := range cases {
		if got := formatNum(v); got != want {
			t.Errorf("formatNum(%v) = %q, want %q", v, got, want)
		}
	}
}
