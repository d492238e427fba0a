package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/offsync/offsync/conformance/contract"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/tlsca"
	"github.com/spf13/cobra"
)

// conformanceFlags are the flags of `offsync conformance`.
type conformanceFlags struct {
	transport   string
	url         string
	token       string
	token2      string
	ca          string
	kind        string
	unknownKind string
	timeout     time.Duration
	// allowExisting lets the checks write to a kind that holds records.
	allowExisting bool
}

// testRecordID matches the ids the checks write: a run prefix (c or t and
// 8 hex digits) and the check's name.
var testRecordID = regexp.MustCompile(`^[ct][0-9a-f]{8}-`)

// checkConformanceKind pulls a page of --kind before any check: a kind the
// server does not serve, or one that holds records other than earlier
// runs' test records (real data) without --allow-existing, stops the
// command with one line; otherwise it says which records the checks write.
func checkConformanceKind(ctx context.Context, f conformanceFlags, out io.Writer) error {
	tr, err := core.OpenTransport(ctx, f.transport, f.url, f.options(f.token))
	if err != nil {
		return usageErrorf("--transport %s --url %s: %v", f.transport, f.url, err)
	}
	if c, ok := tr.(io.Closer); ok {
		defer c.Close()
	}
	page, err := tr.Pull(ctx, core.PullRequest{Kind: f.kind, Limit: 100})
	switch {
	case errors.Is(err, core.ErrUnknownKind):
		return usageErrorf("kind %q is not served by %s: pass --kind with a kind the server serves "+
			"(a kind of its own: offsync serve --kind conformance serves one)", f.kind, f.url)
	case errors.Is(err, core.ErrInvalid):
		return usageError{fmt.Errorf("--url %s: %w", f.url, err)}
	case err != nil:
		return fmt.Errorf("pull %s from %s before the checks: %w", f.kind, f.url, err)
	}
	for _, rec := range page.Records {
		if !testRecordID.MatchString(rec.ID) && !f.allowExisting {
			return usageErrorf("kind %q at %s holds records that are not test records (%s, ...): the checks would write among them; "+
				"use a kind of its own (--kind), or pass --allow-existing to write there anyway", f.kind, f.url, rec.ID)
		}
	}
	_, err = fmt.Fprintf(out, "writing test records to kind %q at %s: ids of the form <c|t><8 hex>-<check>-<n>, some deleted (kept as tombstones)\n", f.kind, f.url)
	return err
}

// options are the client opener options of the checks: the token and,
// with --ca, the CA file to trust.
func (f conformanceFlags) options(token string) map[string]any {
	opts := map[string]any{"token": token}
	if f.ca != "" {
		opts["ca_file"] = f.ca
	}
	return opts
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

It writes test records to --kind: ids made of a random run prefix and the
check's name (c1a2b3c4d-create-1, t5e6f7a8b-paging-3), some deleted, which
stay on the server as tombstones. So it first pulls --kind once: a kind the
server does not serve stops it with one line saying so (pass --kind with a
kind that is served, e.g. offsync serve --kind conformance), and a kind that
holds records other than earlier runs' test records is refused unless
--allow-existing says to write among them. Then it prints one line per
check (PASS, FAIL or SKIP, the check's name, a detail) and exits 1 when a
check fails.

An https, wss or grpcs server whose certificate is not signed by a root the
system trusts (a private CA, a self-signed certificate) is reached with
--ca FILE, a PEM file of the certificates to trust.`,
		Example: `  offsync conformance --transport rest --url http://localhost:8080
  offsync conformance --transport rest --url https://api.example.com/sync --token T1 --token2 T2
  offsync conformance --transport websocket --url ws://localhost:8080/ws --token T1
  offsync conformance --transport grpc --url grpc://localhost:8081 --token T1
  offsync conformance --transport graphql --url http://localhost:8080/graphql --token T1
  offsync conformance --transport grpc --url grpcs://sync.internal:8081 --ca ca.pem --token T1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if known := core.TransportDrivers(); !slices.Contains(known, f.transport) {
				return usageErrorf("--transport %q: unknown transport (known: %s)", f.transport, strings.Join(known, ", "))
			}
			if f.url == "" {
				return usageErrorf("--url is required")
			}
			hc := &http.Client{Timeout: f.timeout}
			if f.ca != "" {
				tlsCfg, err := tlsca.Config(f.ca)
				if err != nil {
					return usageErrorf("--ca %s: %v", f.ca, err)
				}
				tr := http.DefaultTransport.(*http.Transport).Clone()
				tr.TLSClientConfig = tlsCfg
				hc.Transport = tr
			}
			out := cmd.OutOrStdout()
			if err := checkConformanceKind(cmd.Context(), f, out); err != nil {
				return err
			}
			var res []contract.Result
			if f.transport == "rest" {
				r, err := contract.Run(cmd.Context(), contract.Config{
					URL: f.url, Token: f.token, Token2: f.token2, Kind: f.kind, UnknownKind: f.unknownKind,
					HTTPClient: hc,
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
					return core.OpenTransport(ctx, f.transport, f.url, f.options(token))
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
	fl.StringVar(&f.ca, "ca", "", "PEM file of the certificates to trust for an https, wss or grpcs --url (a private CA, a self-signed server)")
	fl.StringVar(&f.token2, "token2", "", "a second principal's token, for scope invisibility (skipped without it)")
	fl.StringVar(&f.kind, "kind", "conformance", "kind the checks write test records to (a kind of its own: one that holds records is refused without --allow-existing)")
	fl.BoolVar(&f.allowExisting, "allow-existing", false, "write the test records even when --kind already holds records")
	fl.StringVar(&f.unknownKind, "unknown-kind", "offsync_unknown_kind", "a kind the server does not serve (for the unknown-kind checks)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "timeout of each request of the raw-HTTP checks (rest)")
	return cmd
}

func init() { rootCmd.AddCommand(newConformanceCmd()) }
