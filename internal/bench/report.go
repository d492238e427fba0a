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

// metricDef describes one row of the report.
type metricDef struct {
	scenario, metric, label, unit string
	// ratioOf, when set, makes the row the ratio of this scenario's metric
	// to another scenario/metric key, run by run.
	ratioOf string
	// target: at most (max) or at least (!max) limit; none when !hasTarget.
	hasTarget bool
	max       bool
	limit     float64
}

const insertLimit = ScenarioLimits + "/insert_rps"

var metricDefs = []metricDef{
	{scenario: ScenarioLimits, metric: "decode_rps", label: "JSON decode of the pulled pages", unit: "rec/s"},
	{scenario: ScenarioLimits, metric: "insert_rps", label: "SQLite bulk insert of the same rows", unit: "rec/s"},
	{scenario: ScenarioPull, metric: "rps", label: "initial pull", unit: "rec/s"},
	{scenario: ScenarioPull, metric: "rps", label: "pull / insert limit", unit: "x", ratioOf: insertLimit, hasTarget: true, limit: 0.75},
	{scenario: ScenarioPull, metric: "rss_mb", label: "client peak RSS", unit: "MB", hasTarget: true, max: true, limit: 100},
	{scenario: ScenarioPullLarge, metric: "rps", label: "initial pull", unit: "rec/s"},
	{scenario: ScenarioPullLarge, metric: "rps", label: "pull / insert limit", unit: "x", ratioOf: insertLimit},
	{scenario: ScenarioPullLarge, metric: "rss_mb", label: "client peak RSS", unit: "MB", hasTarget: true, max: true, limit: 150},
	{scenario: ScenarioPush, metric: "ops_s", label: "push of queued writes", unit: "ops/s"},
	{scenario: ScenarioPush, metric: "ops_s", label: "push / insert limit", unit: "x", ratioOf: insertLimit, hasTarget: true, limit: 0.25},
	{scenario: ScenarioIncremental, metric: "ms", label: "incremental sync", unit: "ms", hasTarget: true, max: true, limit: 15},
	{scenario: ScenarioLocalWrite, metric: "writer_rps", label: "Writer.Insert, 1 row/tx", unit: "rows/s"},
	{scenario: ScenarioLocalWrite, metric: "raw_rps", label: "raw bun insert, 1 row/tx", unit: "rows/s"},
	{scenario: ScenarioLocalWrite, metric: "ratio", label: "writer / raw", unit: "x", hasTarget: true, limit: 0.5},
	{scenario: ScenarioRealtime, metric: "p50_ms", label: "commit to applied on B, p50", unit: "ms", hasTarget: true, max: true, limit: 10},
	{scenario: ScenarioRealtime, metric: "p99_ms", label: "commit to applied on B, p99", unit: "ms"},
	{scenario: ScenarioReplicas, metric: "syncs_s", label: "syncs", unit: "syncs/s"},
	{scenario: ScenarioReplicas, metric: "changes_s", label: "changes pushed", unit: "ops/s"},
	{scenario: ScenarioReplicas, metric: "p50_ms", label: "sync latency p50", unit: "ms"},
	{scenario: ScenarioReplicas, metric: "p99_ms", label: "sync latency p99", unit: "ms", hasTarget: true, max: true, limit: 100},
	{scenario: ScenarioReplicas, metric: "errors", label: "failed syncs", unit: "", hasTarget: true, max: true, limit: 0},
}

// rows turns the runs' figures into the report's rows.
func (r *runner) rows(selected []string) []Row {
	var out []Row
	for _, d := range metricDefs {
		if !slices.Contains(selected, d.scenario) {
			continue
		}
		runs := slices.Clone(r.figures[d.scenario+"/"+d.metric])
		row := Row{Scenario: d.scenario, Metric: d.label, Unit: d.unit, Status: StatusInfo}
		value := Median(runs)
		if d.ratioOf != "" {
			base := r.figures[d.ratioOf]
			value = Median(runs) / Median(base)
			if len(base) == len(runs) {
				for i := range runs {
					runs[i] /= base[i]
				}
			} else {
				runs = nil
			}
		}
		row.Value, row.Runs = value, runs
		if d.hasTarget {
			if d.max {
				row.Target = "<= " + formatNum(d.limit)
			} else {
				row.Target = ">= " + formatNum(d.limit)
			}
			switch {
			case math.IsNaN(value):
				row.Status = StatusMissed
			case d.max && value <= d.limit, !d.max && value >= d.limit:
				row.Status = StatusMet
			default:
				row.Status = StatusMissed
			}
		}
		out = append(out, row)
	}
	return out
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

// WriteTable prints the report as an aligned table.
func (rep *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SCENARIO\tMETRIC\tVALUE\tUNIT\tTARGET\tSTATUS\tRUNS\n")
	for _, row := range rep.Rows {
		runs := make([]string, len(row.Runs))
		for i, v := range row.Runs {
			runs[i] = formatNum(v)
		}
		target := row.Target
		if target == "" {
			target = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", row.Scenario, row.Metric, formatNum(row.Value),
			row.Unit, target, row.Status, strings.Join(runs, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	m := rep.Machine
	_, err := fmt.Fprintf(w, "\n%s/%s, %d CPUs (%s), %s, load before %s; %d runs each (median), %.0fs in all%s\n",
		m.OS, m.Arch, m.CPUs, m.CPUModel, m.GoVersion, m.LoadAvg, rep.Runs, rep.Seconds,
		map[bool]string{true: "; QUICK smoke sizes", false: ""}[rep.Quick])
	return err
}

// WriteJSON writes the report as indented JSON. Figures that could not be
// computed (NaN) are written as null.
func (rep *Report) WriteJSON(w io.Writer) error {
	type row struct {
		Row
		Value *float64   `json:"value"`
		Runs  []*float64 `json:"runs"`
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
		for _, v := range r.Runs {
			x.Runs = append(x.Runs, num(v))
		}
		out.Rows = append(out.Rows, x)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
