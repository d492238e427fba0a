package main

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/offsync/offsync/conformance/contract"
	"github.com/offsync/offsync/core"
	"github.com/spf13/cobra"
)

// conformanceFlags are the flags of `offsync conformance`.
type conformanceFlags struct {
	transport   string
	url         string
	token       string
	token2      string
	kind        string
	unknownKind string
	timeout     time.Duration
}

func newConformanceCmd() *cobra.Command {
	var f conformanceFlags
	cmd := &cobra.Command{
		Use:   "conformance --transport rest --url URL",
		Short: "Check a live server against the sync protocol",
		Long: `conformance checks a live server, written in any language, against
the REST contract of docs/protocol.md: conflicts on a stale base, forced writes,
idempotent replay (and that a 409 is not kept under the key), keyset paging
while rows are written, tombstones, microsecond timestamps, scope
invisibility (with --token2, a second principal that must not see --token's
rows) and the answers to bad input.

It writes records with fresh ids to --kind, prints one line per check
(PASS, FAIL or SKIP, the check's name, a detail) and exits 1 when a check
fails.`,
		Example: `  offsync conformance --transport rest --url http://localhost:8080
  offsync conformance --transport rest --url https://api.example.com/sync --token T1 --token2 T2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.transport != "rest" {
				return usageErrorf("--transport %q: only rest is checked as a black box", f.transport)
			}
			if f.url == "" {
				return usageErrorf("--url is required")
			}
			out := cmd.OutOrStdout()
			res, err := contract.Run(cmd.Context(), contract.Config{
				URL: f.url, Token: f.token, Token2: f.token2, Kind: f.kind, UnknownKind: f.unknownKind,
				HTTPClient: &http.Client{Timeout: f.timeout},
			}, func(r contract.Result) { fmt.Fprintln(out, r) })
			if errors.Is(err, core.ErrInvalid) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			if n := contract.Failed(res); n > 0 {
				return fmt.Errorf("%d of %d checks failed", n, len(res))
			}
			fmt.Fprintf(out, "all %d checks passed or skipped\n", len(res))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.transport, "transport", "rest", "wire form to check (rest)")
	fl.StringVar(&f.url, "url", "", "base URL of the server (required)")
	fl.StringVar(&f.token, "token", "", "bearer token of the checks")
	fl.StringVar(&f.token2, "token2", "", "a second principal's token, for scope invisibility (skipped without it)")
	fl.StringVar(&f.kind, "kind", "conformance", "kind the checks write to")
	fl.StringVar(&f.unknownKind, "unknown-kind", "offsync_unknown_kind", "a kind the server does not serve (for the 404 check)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of each request")
	return cmd
}

func init() { rootCmd.AddCommand(newConformanceCmd()) }
