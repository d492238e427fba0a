package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/offsync/offsync/internal/bench"
	"github.com/spf13/cobra"
)

// benchFlags are the flags of `offsync bench`.
type benchFlags struct {
	runs       int
	only       []string
	transports []string
	stores     []string
	full       bool
	quick      bool
	jsonFile   string
	format     string
	dir        string
	cpuProfile string
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run the benchmark scenarios: server and clients as separate processes",
		Long: `bench measures offsync on the standard data set: records of about 215 bytes
(id, title, body, count, done) in a typed table. It runs the server (every
registered wire form over a durable authority: SQLite with synchronous FULL, or
Postgres) and the clients as separate processes on 127.0.0.1, runs each
scenario on every transport and store asked for, repeats it (the median of
--runs is reported), and prints one table: each figure with the limit it is
compared to and the ratio, its target and whether it is met.

Scenarios: ` + strings.Join(bench.Scenarios(), ", ") + `.
Transports: any registered client transport with a server half (` + strings.Join(bench.Transports(), ", ") + `), or all.
Stores: ` + strings.Join(bench.Stores(), ", ") + `, or all. Postgres is the server of OFFSYNC_POSTGRES_DSN,
else a throwaway cluster with fsync and synchronous_commit on.
The limits (JSON decode and SQLite insert of the same rows) are measured in
the same run; the pull and push targets are ratios to them. CPU time (user+sys
of client and server per 10,000 pulled or pushed) comes from the processes'
rusage. By default ` + bench.Reduced + `
(--full runs every cell --runs times). --quick prints no verdicts.`,
		Example: `  offsync bench
  offsync bench --transport all --store all --json bench.json
  offsync bench --only pull-100k,push --runs 5
  offsync bench --quick --format json
  offsync bench --json bench.json --cpuprofile ./profiles`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runBench(cmd, &f) },
	}
	fl := cmd.Flags()
	fl.IntVar(&f.runs, "runs", 0, "repetitions of each scenario (default 3, 1 with --quick)")
	fl.StringSliceVar(&f.only, "only", nil, "comma-separated scenarios to run (default all)")
	fl.StringSliceVar(&f.transports, "transport", []string{bench.DefaultTransport}, "comma-separated transports to run each scenario on, or all")
	fl.StringSliceVar(&f.stores, "store", []string{bench.StoreSQLite}, "comma-separated authority stores (sqlite, postgres), or all")
	fl.BoolVar(&f.full, "full", false, "run every transport and store cell --runs times (beyond the 10-minute budget)")
	fl.BoolVar(&f.quick, "quick", false, "tiny sizes: a smoke run of every scenario")
	fl.StringVar(&f.jsonFile, "json", "", "also write the report as JSON to this file")
	fl.StringVar(&f.format, "format", "table", "output on stdout: table or json")
	fl.StringVar(&f.dir, "dir", "", "work directory, kept after the run (default: a temporary one, removed)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "directory for a CPU profile of every worker process")
	return cmd
}

func runBench(cmd *cobra.Command, f *benchFlags) error {
	if f.format != "table" && f.format != "json" {
		return usageErrorf("--format must be table or json, not %q", f.format)
	}
	if f.runs < 0 {
		return usageErrorf("--runs must be at least 1, not %d", f.runs)
	}
	known := bench.Scenarios()
	for _, name := range f.only {
		if !containsString(known, name) {
			return usageErrorf("--only: unknown scenario %q (known: %s)", name, strings.Join(known, ", "))
		}
	}
	for _, l := range []struct {
		flag        string
		names, know []string
	}{{"--transport", f.transports, bench.Transports()}, {"--store", f.stores, bench.Stores()}} {
		for _, name := range l.names {
			if name == "all" && len(l.names) == 1 {
				continue
			}
			if !containsString(l.know, name) {
				return usageErrorf("%s: unknown name %q (known: %s; or all alone)", l.flag, name, strings.Join(l.know, ", "))
			}
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: find the offsync binary: %w", err)
	}
	cfg := bench.Config{
		Command:       []string{exe, benchWorkerName},
		Dir:           f.dir,
		Runs:          f.runs,
		Only:          f.only,
		Transports:    f.transports,
		Stores:        f.stores,
		Full:          f.full,
		Progress:      cmd.ErrOrStderr(),
		CPUProfileDir: f.cpuProfile,
	}
	if f.quick {
		cfg.Sizes, cfg.Quick = bench.QuickSizes(), true
		if cfg.Runs == 0 {
			cfg.Runs = 1
		}
	}
	for _, d := range []string{f.dir, f.cpuProfile} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
		}
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if f.jsonFile != "" {
		out, err := os.Create(f.jsonFile)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		if err := rep.WriteJSON(out); err != nil {
			out.Close()
			return fmt.Errorf("bench: write %s: %w", f.jsonFile, err)
		}
		if err := out.Close(); err != nil {
			return fmt.Errorf("bench: write %s: %w", f.jsonFile, err)
		}
	}
	if f.format == "json" {
		return rep.WriteJSON(cmd.OutOrStdout())
	}
	return rep.WriteTable(cmd.OutOrStdout())
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// benchWorkerName is the hidden command the bench re-executes offsync with,
// for its server and client processes.
const benchWorkerName = "bench-worker"

func newBenchWorkerCmd() *cobra.Command {
	var spec string
	cmd := &cobra.Command{
		Use:    benchWorkerName,
		Short:  "One process of `offsync bench` (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if spec == "" {
				return usageErrorf("--spec is required")
			}
			var s bench.Spec
			if err := json.Unmarshal([]byte(spec), &s); err != nil {
				return usageErrorf("--spec: %v", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return bench.Worker(ctx, s, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&spec, "spec", "", "what to do, as JSON (bench.Spec)")
	return cmd
}

func init() {
	rootCmd.AddCommand(newBenchCmd(), newBenchWorkerCmd())
}
