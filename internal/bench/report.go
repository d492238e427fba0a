package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// target is a bound on a figure: at most (max) or at least limit.
type target struct {
	max   bool
	limit float64
}

func atLeast(v float64) *target { return &target{limit: v} }
func atMost(v float64) *target  { return &target{max: true, limit: v} }

func (t *target) String() string {
	if t.max {
		return "<= " + formatNum(t.limit)
	}
	return ">= " + formatNum(t.limit)
}

func (t *target) met(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	if t.max {
		return v <= t.limit
	}
	return v >= t.limit
}

// better reports whether figure a is better than b for a row under t.
func (t *target) better(a, b float64) bool {
	if math.IsNaN(b) {
		return !math.IsNaN(a)
	}
	if t.max {
		return a < b
	}
	return a > b
}

// metricDef describes the rows of one figure of a scenario: one per cell.
type metricDef struct {
	scenario, metric, label, unit string
	// limit, when set, is the key of the limit the figure is compared to:
	// the row shows it and the ratio, and the targets apply to the ratio.
	limit string
	// every applies to every cell; rest to the REST cells on SQLite.
	every, rest *target
	// fastest applies to the best cell on SQLite, shown in a row of its own.
	fastest *target
	// vsSQLite adds, to each Postgres cell, the ratio of its figure to the
	// same transport's on SQLite.
	vsSQLite bool
}

var insertLimit = key(ScenarioLimits, cell{}, "insert_rps")

var metricDefs = []metricDef{
	{scenario: ScenarioLimits, metric: "decode_rps", label: "JSON decode of the pulled pages", unit: "rec/s"},
	{scenario: ScenarioLimits, metric: "insert_rps", label: "SQLite bulk insert of the same rows", unit: "rec/s"},
	{scenario: ScenarioPull, metric: "rps", label: "initial pull", unit: "rec/s", limit: insertLimit,
		rest: atLeast(0.6), fastest: atLeast(0.75), vsSQLite: true},
	{scenario: ScenarioPull, metric: "rss_mb", label: "client peak RSS", unit: "MB", every: atMost(100)},
	{scenario: ScenarioPull, metric: "cpu_client_10k", label: "client CPU per 10k pulled", unit: "ms"},
	{scenario: ScenarioPull, metric: "cpu_server_10k", label: "server CPU per 10k pulled", unit: "ms"},
	{scenario: ScenarioPullLarge, metric: "rps", label: "initial pull", unit: "rec/s", limit: insertLimit, vsSQLite: true},
	{scenario: ScenarioPullLarge, metric: "rss_mb", label: "client peak RSS", unit: "MB", every: atMost(150)},
	{scenario: ScenarioPullLarge, metric: "cpu_client_10k", label: "client CPU per 10k pulled", unit: "ms"},
	{scenario: ScenarioPullLarge, metric: "cpu_server_10k", label: "server CPU per 10k pulled", unit: "ms"},
	{scenario: ScenarioPush, metric: "ops_s", label: "push of queued writes", unit: "ops/s", limit: insertLimit,
		rest: atLeast(0.15), fastest: atLeast(0.25), vsSQLite: true},
	{scenario: ScenarioPush, metric: "cpu_client_10k", label: "client CPU per 10k pushed", unit: "ms"},
	{scenario: ScenarioPush, metric: "cpu_server_10k", label: "server CPU per 10k pushed", unit: "ms"},
	{scenario: ScenarioIncremental, metric: "ms", label: "incremental sync", unit: "ms",
		rest: atMost(15), fastest: atMost(10), vsSQLite: true},
	{scenario: ScenarioLocalWrite, metric: "writer_rps", label: "Writer.Insert, 1 row/tx", unit: "rows/s"},
	{scenario: ScenarioLocalWrite, metric: "raw_rps", label: "raw bun insert, 1 row/tx", unit: "rows/s"},
	{scenario: ScenarioLocalWrite, metric: "ratio", label: "writer / raw", unit: "x", every: atLeast(0.5)},
	{scenario: ScenarioRealtime, metric: "p50_ms", label: "commit to applied on B, p50", unit: "ms", every: atMost(10)},
	{scenario: ScenarioRealtime, metric: "p99_ms", label: "commit to applied on B, p99", unit: "ms"},
	{scenario: ScenarioReplicas, metric: "syncs_s", label: "syncs", unit: "syncs/s"},
	{scenario: ScenarioReplicas, metric: "changes_s", label: "changes pushed", unit: "ops/s"},
	{scenario: ScenarioReplicas, metric: "p50_ms", label: "sync latency p50", unit: "ms"},
	{scenario: ScenarioReplicas, metric: "p99_ms", label: "sync latency p99", unit: "ms", every: atMost(100)},
	{scenario: ScenarioReplicas, metric: "errors", label: "failed syncs", unit: "", every: atMost(0)},
}

// rows turns the runs' figures into the report's rows: per figure, one row
// per cell, then the fastest cell on SQLite against its target, then each
// Postgres cell against SQLite.
func (r *runner) rows(selected []string) []Row {
	var out []Row
	for _, d := range metricDefs {
		if !slices.Contains(selected, d.scenario) {
			continue
		}
		var cellRows []Row
		for _, c := range r.cells(d.scenario) {
			row := r.row(d, c)
			var t *target
			switch {
			case d.every != nil:
				t = d.every
			case d.rest != nil && c.transport == DefaultTransport && c.store == StoreSQLite:
				t = d.rest
			}
			r.judge(&row, t, d.limit != "")
			cellRows = append(cellRows, row)
		}
		out = append(out, cellRows...)
		if d.fastest != nil {
			var best *Row
			for i := range cellRows {
				row := &cellRows[i]
				if row.Store != StoreSQLite {
					continue
				}
				if best == nil || d.fastest.better(figure(*row, d), figure(*best, d)) {
					best = row
				}
			}
			if best != nil {
				row := *best
				row.Transport = "fastest=" + best.Transport
				r.judge(&row, d.fastest, d.limit != "")
				out = append(out, row)
			}
		}
		if d.vsSQLite {
			for _, row := range cellRows {
				if row.Store != StorePostgres {
					continue
				}
				base := Median(r.figures[key(d.scenario, cell{row.Transport, StoreSQLite}, d.metric)])
				out = append(out, Row{Scenario: d.scenario, Transport: row.Transport, Store: row.Store,
					Metric: d.label + ", Postgres / SQLite", Unit: "x", Value: row.Value / base,
					Runs: []float64{}, Status: r.status(StatusInfo)})
			}
		}
	}
	return out
}

// figure is the number a row's target applies to.
func figure(row Row, d metricDef) float64 {
	if d.limit != "" {
		return row.Ratio
	}
	return row.Value
}

// row is the row of one figure of one cell, without a verdict.
func (r *runner) row(d metricDef, c cell) Row {
	runs := slices.Clone(r.figures[key(d.scenario, c, d.metric)])
	row := Row{Scenario: d.scenario, Transport: c.transport, Store: c.store, Metric: d.label, Unit: d.unit,
		Value: Median(runs), Runs: runs}
	if row.Runs == nil {
		row.Runs = []float64{}
	}
	if d.limit != "" {
		row.Limit = Median(r.figures[d.limit])
		row.Ratio = row.Value / row.Limit
	}
	return row
}

// judge sets a row's target and verdict: t applies to the ratio when the
// row has a limit. A quick run gives no verdict.
func (r *runner) judge(row *Row, t *target, onRatio bool) {
	row.Status = r.status(StatusInfo)
	if t == nil {
		return
	}
	row.Target = t.String()
	v := row.Value
	if onRatio {
		row.Target += " x"
		v = row.Ratio
	}
	if t.met(v) {
		row.Status = r.status(StatusMet)
	} else {
		row.Status = r.status(StatusMissed)
	}
}

// status is s, or no verdict at all in a quick run.
func (r *runner) status(s string) string {
	if r.cfg.Quick {
		return ""
	}
	return s
}

// formatNum renders a figure with three significant digits at most for
// small values and thousands separators for large ones.
func formatNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.Abs(v) >= 1000:
		s := strconv.FormatInt(int64(math.Round(v)), 10)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// WriteTable prints the report as one aligned table: per row the
// workload, transport, store, figure (its value and unit), the limit it is
// compared to and the ratio, the target and the verdict, and every run.
func (rep *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "WORKLOAD\tTRANSPORT\tSTORE\tFIGURE\tVALUE\tUNIT\tLIMIT\tRATIO\tTARGET\tVERDICT\tRUNS\n")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, row := range rep.Rows {
		runs := make([]string, len(row.Runs))
		for i, v := range row.Runs {
			runs[i] = formatNum(v)
		}
		limit, ratio := "-", "-"
		if row.Limit != 0 {
			limit, ratio = formatNum(row.Limit), formatNum(row.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Scenario, dash(row.Transport),
			dash(row.Store), row.Metric, formatNum(row.Value), dash(row.Unit), limit, ratio, dash(row.Target),
			dash(row.Status), strings.Join(runs, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	m := rep.Machine
	note := ""
	if rep.Quick {
		note = "; QUICK smoke sizes, no verdicts (tiny sizes prove nothing)"
	} else if !rep.Full && rep.Runs > 1 {
		note = "; " + Reduced
	}
	_, err := fmt.Fprintf(w, "\n%s/%s, %d CPUs (%s), %s, load before %s; transports %s, stores %s; %d runs each (median)%s; %.0fs in all\n",
		m.OS, m.Arch, m.CPUs, m.CPUModel, m.GoVersion, m.LoadAvg, strings.Join(rep.Transports, ","),
		strings.Join(rep.Stores, ","), rep.Runs, note, rep.Seconds)
	if err == nil && rep.Postgres != "" {
		_, err = fmt.Fprintf(w, "Postgres: %s\n", rep.Postgres)
	}
	return err
}

// WriteJSON writes the report as indented JSON. Figures that could not be
// computed (NaN) are written as null.
func (rep *Report) WriteJSON(w io.Writer) error {
	type row struct {
		Row
		Value *float64   `json:"value"`
		Runs  []*float64 `json:"runs"`
		Limit *float64   `json:"limit"`
		Ratio *float64   `json:"ratio"`
	}
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	out := struct {
		*Report
		Rows []row `json:"results"`
	}{Report: rep}
	for _, r := range rep.Rows {
		x := row{Row: r, Value: num(r.Value), Runs: []*float64{}}
		if r.Limit != 0 {
			x.Limit, x.Ratio = num(r.Limit), num(r.Ratio)
		}
		for _, v := range r.Runs {
			x.Runs = append(x.Runs, num(v))
		}
		out.Rows = append(out.Rows, x)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
