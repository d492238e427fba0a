package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
)

// This file holds the sync command and what the commands driven by a client
// config share: the --config flag, opening the replica, and JSON output.

// configPath is the --config flag of the client commands.
var configPath string

// addConfigFlag gives cmd (and its subcommands) the --config flag.
func addConfigFlag(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVarP(&configPath, "config", "c", config.DefaultFile, "client config file (YAML)")
	_ = cmd.MarkPersistentFlagFilename("config", "yaml", "yml")
}

// openReplica loads the client config and opens its replica. A config
// mistake is a usage error (exit 2); the caller closes the engine.
func openReplica(ctx context.Context) (*config.Client, *core.Engine, error) {
	return openReplicaFor(ctx, false)
}

// openLocalReplica is openReplica for the commands that only read the local
// database (status, conflicts list, dead-letters list): they never create
// one, and say where they looked when there is none.
func openLocalReplica(ctx context.Context) (*config.Client, *core.Engine, error) {
	return openReplicaFor(ctx, true)
}

// errNoDatabase: a read-only command found no local database.
var errNoDatabase = errors.New("no local database")

func openReplicaFor(ctx context.Context, readOnly bool) (*config.Client, *core.Engine, error) {
	cfg, err := config.LoadClient(configPath)
	if err != nil {
		return nil, nil, usageError{err}
	}
	if file, ok := cfg.Store.LocalFile(); ok && readOnly {
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w at %s (store.dsn of %s): nothing has been written or synced yet; `offsync sync -c %s` creates it",
				errNoDatabase, file, cfg.File(), cfg.File())
		}
	}
	eng, err := offsync.Open(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, eng, nil
}

// signalContext is cmd's context, cancelled on SIGINT or SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// recordJSON is a record as the commands print it.
type recordJSON struct {
	Kind      string          `json:"kind"`
	ID        string          `json:"id"`
	UpdatedAt string          `json:"updated_at,omitempty"`
	DeletedAt string          `json:"deleted_at,omitempty"`
	EditedAt  string          `json:"edited_at,omitempty"`
	Data      json.RawMessage `json:"data"`
	// Pending is the type of the row's last op in the outbox (upsert,
	// delete), for local commands; "" when the row is in sync.
	Pending string `json:"pending,omitempty"`
}

func toRecordJSON(r *core.Record) *recordJSON {
	if r == nil {
		return nil
	}
	out := &recordJSON{Kind: r.Kind, ID: r.ID, Data: r.Data}
	if len(out.Data) == 0 {
		out.Data = json.RawMessage("{}")
	}
	if !r.UpdatedAt.IsZero() {
		out.UpdatedAt = core.FormatTime(r.UpdatedAt)
	}
	if !r.DeletedAt.IsZero() {
		out.DeletedAt = core.FormatTime(r.DeletedAt)
	}
	if !r.EditedAt.IsZero() {
		out.EditedAt = core.FormatTime(r.EditedAt)
	}
	return out
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return core.FormatTime(t)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

var syncKinds []string

var syncCmd = &cobra.Command{
	Use:   "sync",
	Short: "Sync a replica once: push its outbox, then pull every kind",
	Long: `Sync the replica described by a client config once: push the outbox, resolve
conflicts with the configured strategies, then pull every kind page by page.

While pulling, a progress bar per kind is shown when standard output is a
terminal, and one plain progress line per page otherwise (for logs and CI).
A summary follows. The exit code is 1 when the push or a pull failed or an op
failed, 2 for a config mistake, 0 otherwise.`,
	Example: `  # Sync the replica of ./offsync.yaml:
  offsync sync

  # Another config, only two kinds:
  offsync sync --config client.yaml --kind note --kind task`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		ctx, stop := signalContext(cmd)
		defer stop()
		_, eng, err := openReplica(ctx)
		if err != nil {
			return err
		}
		defer eng.Close()
		return runSync(ctx, eng, cmd.OutOrStdout(), isTerminal(cmd.OutOrStdout()))
	},
}

// kindProgress is what was pulled of one kind.
type kindProgress struct {
	pulled, kept, pages int
	total               int64 // -1 while unknown
}

// progress shows pull progress: a bar per kind on a terminal, plain lines
// otherwise.
type progress struct {
	out   io.Writer
	tty   bool
	kinds map[string]*kindProgress
	order []string
	bar   *progressbar.ProgressBar
	cur   string
	errs  []string
}

func (p *progress) page(ev core.PagePulled) {
	k := p.kinds[ev.Kind]
	if k == nil {
		k = &kindProgress{total: -1}
		p.kinds[ev.Kind] = k
		p.order = append(p.order, ev.Kind)
	}
	k.pages++
	k.pulled += ev.Upserts + ev.Deletes
	k.kept += ev.Kept
	seen := int64(k.pulled + k.kept)
	if ev.Remaining >= 0 {
		k.total = seen + ev.Remaining
	}
	if !p.tty {
		if k.total >= 0 {
			fmt.Fprintf(p.out, "pull %s: %d/%d\n", ev.Kind, seen, k.total)
		} else {
			fmt.Fprintf(p.out, "pull %s: %d\n", ev.Kind, seen)
		}
		return
	}
	if p.cur != ev.Kind {
		p.finishBar()
		p.cur = ev.Kind
		p.bar = progressbar.NewOptions64(k.total,
			progressbar.OptionSetWriter(p.out),
			progressbar.OptionSetDescription("pull "+ev.Kind),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	if k.total >= 0 && p.bar.GetMax64() != k.total {
		p.bar.ChangeMax64(k.total)
	}
	_ = p.bar.Set64(seen)
}

func (p *progress) finishBar() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.out)
		p.bar = nil
	}
}

func (p *progress) event(ev core.Event) {
	switch ev := ev.(type) {
	case core.PagePulled:
		p.page(ev)
	case core.SyncError:
		what := ev.Err.Error()
		if ev.Kind != "" {
			what = ev.Kind + ": " + what
		}
		p.errs = append(p.errs, what)
	}
}

// runSync runs one Sync of eng, showing progress on out, and prints a summary.
func runSync(ctx context.Context, eng *core.Engine, out io.Writer, tty bool) error {
	sub := eng.Subscribe(1 << 14)
	p := &progress{out: out, tty: tty, kinds: map[string]*kindProgress{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range sub.C {
			p.event(ev)
		}
	}()
	var opts []core.SyncOption
	if len(syncKinds) > 0 {
		opts = append(opts, core.Kinds(syncKinds...))
	}
	start := time.Now()
	stats, err := eng.Sync(ctx, opts...)
	elapsed := time.Since(start)
	sub.Close()
	<-done
	p.finishBar()

	for _, kind := range p.order {
		k := p.kinds[kind]
		fmt.Fprintf(out, "  %-20s pulled %d, kept %d, in %d pages\n", kind, k.pulled, k.kept, k.pages)
	}
	fmt.Fprintf(out, "synced in %s: pushed %d, pulled %d, kept %d, conflicts %d, resolved %d, errors %d, stuck %d\n",
		elapsed.Round(time.Millisecond), stats.Pushed, stats.Pulled, stats.Kept, stats.Conflicts, stats.Resolved, stats.Errors, stats.Stuck)
	if n := sub.Dropped(); n > 0 {
		slog.Warn("progress events were dropped", "count", n)
	}
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if stats.Errors > 0 {
		sort.Strings(p.errs)
		return fmt.Errorf("sync: %d errors: %s", stats.Errors, strings.Join(p.errs, "; "))
	}
	return nil
}

func init() {
	addConfigFlag(syncCmd)
	syncCmd.Flags().StringArrayVar(&syncKinds, "kind", nil, "sync only this kind (repeatable; default: every kind)")
	rootCmd.AddCommand(syncCmd)
}
