package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
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
		Use:   "conformance --transport NAME --url URL",
		Short: "Check a live server against the sync protocol",
		Long: `conformance checks a live server, written in any language, against
the sync contract of docs/protocol.md, over the wire form --transport names:
any client transport registered in this binary (rest, and the others the
binary was built with; an unknown name lists them).

With --transport rest it first checks the REST form as a black box, with raw
HTTP: conflicts on a stale base, forced writes, idempotent replay (and that a
409 is not kept under the key), keyset paging while rows are written,
tombstones, microsecond timestamps, scope invisibility and the answers to bad
input. Then, for every transport (rest included), it opens the registered
client at --url and checks through it what means the same on every wire
form: creates with microsecond versions, replay of the same op, conflicts
with the current record and the forced retry after one, tombstones, keyset
paging, fetching one record, unknown kinds, forged page tokens, scope
invisibility, a notice after subscribing and the advertised batch limits.
Those lines are named TRANSPORT/check. Scope invisibility needs --token2, a
second principal that must not see --token's rows.

It writes records with fresh ids to --kind, prints one line per check
(PASS, FAIL or SKIP, the check's name, a detail) and exits 1 when a check
fails.`,
		Example: `  offsync conformance --transport rest --url http://localhost:8080
  offsync conformance --transport rest --url https://api.example.com/sync --token T1 --token2 T2
  offsync conformance --transport websocket --url ws://localhost:8080/ws --token T1
  offsync conformance --transport grpc --url grpc://localhost:8081 --token T1
  offsync conformance --transport graphql --url http://localhost:8080/graphql --token T1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if known := core.TransportDrivers(); !slices.Contains(known, f.transport) {
				return usageErrorf("--transport %q: unknown transport (known: %s)", f.transport, strings.Join(known, ", "))
			}
			if f.url == "" {
				return usageErrorf("--url is required")
			}
			out := cmd.OutOrStdout()
			var res []contract.Result
			if f.transport == "rest" {
				r, err := contract.Run(cmd.Context(), contract.Config{
					URL: f.url, Token: f.token, Token2: f.token2, Kind: f.kind, UnknownKind: f.unknownKind,
					HTTPClient: &http.Client{Timeout: f.timeout},
				}, func(r contract.Result) { fmt.Fprintln(out, r) })
				if errors.Is(err, core.ErrInvalid) {
					return usageError{err}
				}
				if err != nil {
					return err
				}
				res = r
			}
			r, err := contract.RunClient(cmd.Context(), contract.ClientConfig{
				Open: func(ctx context.Context, token string) (core.Transport, error) {
					return core.OpenTransport(ctx, f.transport, f.url, map[string]any{"token": token})
				},
				Token: f.token, Token2: f.token2, Kind: f.kind, UnknownKind: f.unknownKind,
			}, func(r contract.Result) {
				r.Name = f.transport + "/" + r.Name
				fmt.Fprintln(out, r)
			})
			if errors.Is(err, core.ErrInvalid) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			res = append(res, r...)
			if n := contract.Failed(res); n > 0 {
				return fmt.Errorf("%d of %d checks failed", n, len(res))
			}
			fmt.Fprintf(out, "all %d checks passed or skipped\n", len(res))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.transport, "transport", "rest", "wire form to check: a registered client transport ("+strings.Join(core.TransportDrivers(), ", ")+")")
	fl.StringVar(&f.url, "url", "", "the server's URL for that transport (required): http(s)://host[/prefix] for rest")
	fl.StringVar(&f.token, "token", "", "bearer token of the checks")
	fl.StringVar(&f.token2, "token2", "", "a second principal's token, for scope invisibility (skipped without it)")
	fl.StringVar(&f.kind, "kind", "conformance", "kind the checks write to")
	fl.StringVar(&f.unknownKind, "unknown-kind", "offsync_unknown_kind", "a kind the server does not serve (for the unknown-kind checks)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of each request of the raw-HTTP checks (rest)")
	return cmd
}

func init() { rootCmd.AddCommand(newConformanceCmd()) }
