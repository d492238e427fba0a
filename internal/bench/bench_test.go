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
	if _, err := Run(ctx, Config{Command: []string{"x"}, Transports: []string{"carrier-pigeon"}}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("unknown transport: %v", err)
	}
	if _, err := Run(ctx, Config{Command: []string{"x"}, Stores: []string{"csv"}}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("unknown store: %v", err)
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
	if err := Worker(ctx, Spec{Role: RoleServer, Store: "csv", DB: "x"}, strings.NewReader(""), &out); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("server on an unknown store: %v", err)
	}
	if err := Worker(ctx, Spec{Role: RolePull, Transport: "carrier-pigeon", URL: "http://127.0.0.1:1", Dir: t.TempDir()},
		strings.NewReader(""), &out); !errors.Is(err, core.ErrUnknownDriver) {
		t.Errorf("pull over an unknown transport: %v", err)
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
	rest, ws := cell{"rest", StoreSQLite}, cell{"ws", StoreSQLite}
	pgRest := cell{"rest", StorePostgres}
	client := cell{}
	r := &runner{cfg: Config{Runs: 3, Transports: []string{"rest", "ws"}, Stores: []string{StoreSQLite, StorePostgres}},
		figures: map[string][]float64{}}
	set := func(scenario string, c cell, metric string, v ...float64) { r.figures[key(scenario, c, metric)] = v }
	set(ScenarioLimits, client, "decode_rps", 300, 100, 200)
	set(ScenarioLimits, client, "insert_rps", 100, 200, 300) // median 200
	set(ScenarioPull, rest, "rps", 110, 130, 120)            // 0.6: REST met
	set(ScenarioPull, ws, "rps", 140, 150, 145)              // 0.725: the fastest, missed
	set(ScenarioPull, pgRest, "rps", 60)                     // half of SQLite's
	set(ScenarioPull, rest, "rss_mb", 90, 120, 110)          // median 110 > 100
	set(ScenarioPull, ws, "rss_mb", 40, 41, 42)
	set(ScenarioLocalWrite, client, "ratio", 0.4, 0.6, 0.5) // median 0.5 >= 0.5
	set(ScenarioReplicas, rest, "errors", 0, 1, 0)          // median 0: met
	set(ScenarioRealtime, rest, "p50_ms", 12, 9, 11)        // median 11 > 10
	set(ScenarioIncremental, rest, "ms", 14, 16, 15)        // REST met; fastest missed
	set(ScenarioIncremental, ws, "ms", 9, 9.5, 10)          // the fastest, met
	// incremental on Postgres: no figure, missed.
	rows := r.rows([]string{ScenarioLimits, ScenarioPull, ScenarioLocalWrite, ScenarioReplicas, ScenarioRealtime, ScenarioIncremental})
	get := func(scenario, transport, store, metric string) Row {
		t.Helper()
		for _, row := range rows {
			if row.Scenario == scenario && row.Transport == transport && row.Store == store && row.Metric == metric {
				return row
			}
		}
		t.Fatalf("no row %s %s %s %s", scenario, transport, store, metric)
		return Row{}
	}
	if row := get(ScenarioLimits, "", "", "JSON decode of the pulled pages"); row.Value != 200 || row.Status != StatusInfo || row.Limit != 0 {
		t.Errorf("decode: %+v", row)
	}
	if row := get(ScenarioPull, "rest", StoreSQLite, "initial pull"); row.Value != 120 || row.Limit != 200 ||
		row.Ratio != 0.6 || row.Status != StatusMet || row.Target != ">= 0.60 x" || !slices.Equal(row.Runs, []float64{110, 130, 120}) {
		t.Errorf("REST pull: %+v", row)
	}
	if row := get(ScenarioPull, "ws", StoreSQLite, "initial pull"); row.Ratio != 0.725 || row.Status != StatusInfo || row.Target != "" {
		t.Errorf("another transport's pull has no target of its own: %+v", row)
	}
	if row := get(ScenarioPull, "fastest=ws", StoreSQLite, "initial pull"); row.Ratio != 0.725 || row.Status != StatusMissed || row.Target != ">= 0.75 x" {
		t.Errorf("fastest pull: %+v", row)
	}
	if row := get(ScenarioPull, "rest", StorePostgres, "initial pull"); row.Ratio != 0.3 || row.Status != StatusInfo {
		t.Errorf("Postgres pull is reported: %+v", row)
	}
	if row := get(ScenarioPull, "rest", StorePostgres, "initial pull, Postgres / SQLite"); row.Value != 0.5 || row.Status != StatusInfo {
		t.Errorf("Postgres / SQLite: %+v", row)
	}
	if row := get(ScenarioPull, "rest", StoreSQLite, "client peak RSS"); row.Value != 110 || row.Status != StatusMissed || row.Target != "<= 100" {
		t.Errorf("rss: %+v", row)
	}
	if row := get(ScenarioPull, "ws", StoreSQLite, "client peak RSS"); row.Status != StatusMet {
		t.Errorf("every transport has the memory bound: %+v", row)
	}
	if row := get(ScenarioLocalWrite, "", "", "writer / raw"); row.Value != 0.5 || row.Status != StatusMet {
		t.Errorf("local write: %+v", row)
	}
	if row := get(ScenarioReplicas, "rest", StoreSQLite, "failed syncs"); row.Value != 0 || row.Status != StatusMet {
		t.Errorf("errors: %+v", row)
	}
	if row := get(ScenarioRealtime, "rest", StoreSQLite, "commit to applied on B, p50"); row.Value != 11 || row.Status != StatusMissed {
		t.Errorf("realtime: %+v", row)
	}
	if row := get(ScenarioIncremental, "rest", StoreSQLite, "incremental sync"); row.Value != 15 || row.Status != StatusMet || row.Target != "<= 15" {
		t.Errorf("REST incremental: %+v", row)
	}
	if row := get(ScenarioIncremental, "fastest=ws", StoreSQLite, "incremental sync"); row.Value != 9.5 || row.Status != StatusMet || row.Target != "<= 10" {
		t.Errorf("fastest incremental: %+v", row)
	}
	if row := get(ScenarioIncremental, "ws", StorePostgres, "incremental sync"); !math.IsNaN(row.Value) {
		t.Errorf("incremental on Postgres without a figure: %+v", row)
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
			Limit    *float64 `json:"limit"`
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
		if (r.Limit == nil) != (rows[i].Limit == 0) {
			t.Errorf("%s %s: limit %v in JSON, %v in the report", r.Scenario, rows[i].Metric, r.Limit, rows[i].Limit)
		}
	}
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "incremental sync") || strings.Count(table.String(), "\n") < len(rows)+1 ||
		!strings.HasPrefix(table.String(), "WORKLOAD") {
		t.Errorf("table:\n%s", table.String())
	}

	// A quick run gives no verdict at all.
	r.cfg.Quick = true
	for _, row := range r.rows([]string{ScenarioPull, ScenarioIncremental}) {
		if row.Status != "" {
			t.Errorf("quick run: %s %s %s: verdict %q", row.Scenario, row.Transport, row.Metric, row.Status)
		}
	}
}

func TestRunsOf(t *testing.T) {
	r := &runner{cfg: Config{Runs: 3, Transports: []string{"rest", "ws"}, Stores: []string{StoreSQLite, StorePostgres}}}
	cases := []struct {
		scenario string
		c        cell
		want     int
	}{
		{ScenarioLimits, cell{}, 3},
		{ScenarioPull, cell{"ws", StorePostgres}, 3},
		{ScenarioPush, cell{"ws", StorePostgres}, 3},
		{ScenarioPullLarge, cell{"rest", StoreSQLite}, 3},
		{ScenarioPullLarge, cell{"ws", StoreSQLite}, 1},
		{ScenarioPullLarge, cell{"rest", StorePostgres}, 1},
		{ScenarioPullLarge, cell{"ws", StorePostgres}, 0},
		{ScenarioReplicas, cell{"rest", StoreSQLite}, 3},
		{ScenarioReplicas, cell{"ws", StoreSQLite}, 1},
		{ScenarioReplicas, cell{"rest", StorePostgres}, 1},
		{ScenarioReplicas, cell{"ws", StorePostgres}, 0},
	}
	for _, c := range cases {
		if got := r.runsOf(c.scenario, c.c); got != c.want {
			t.Errorf("%s on %s: %d runs, want %d", c.scenario, c.c, got, c.want)
		}
	}
	if got := r.cells(ScenarioReplicas); !slices.Equal(got, []cell{{"rest", StoreSQLite}, {"ws", StoreSQLite}, {"rest", StorePostgres}}) {
		t.Errorf("replicas run on %v", got)
	}
	if got := r.cells(ScenarioPush); len(got) != 4 {
		t.Errorf("push runs on %v, want every pair", got)
	}
	r.cfg.Full = true
	for _, c := range cases {
		if got := r.runsOf(c.scenario, c.c); got != 3 {
			t.Errorf("full: %s on %s: %d runs, want 3", c.scenario, c.c, got)
		}
	}
}

func TestCheckNames(t *testing.T) {
	known := []string{"rest", "ws"}
	if got, err := checkNames("transport", nil, "rest", known); err != nil || !slices.Equal(got, []string{"rest"}) {
		t.Errorf("default: %v %v", got, err)
	}
	if got, err := checkNames("transport", []string{"all"}, "rest", known); err != nil || !slices.Equal(got, known) {
		t.Errorf("all: %v %v", got, err)
	}
	if got, err := checkNames("transport", []string{"ws", "rest", "ws"}, "rest", known); err != nil || !slices.Equal(got, []string{"ws", "rest"}) {
		t.Errorf("list: %v %v", got, err)
	}
	for _, bad := range [][]string{{"nope"}, {"all", "rest"}} {
		if _, err := checkNames("transport", bad, "rest", known); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%v: %v", bad, err)
		}
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
