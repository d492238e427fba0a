package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
A summary follows:

  pushed    ops the server applied
  pulled    rows pulled from the server (this replica's own pushes, which the
            pull reads back, are counted apart)
  kept      pulled rows left alone because this replica still has unsent
            edits of them; they catch up when those edits are answered
  conflicts conflicts met, and resolved by the kinds' strategies
  stuck     ops this sync could not push: conflicts waiting in the inbox,
            dead letters, ops backing off after a failure, or ops paused
            while the server is unreachable (see offsync status)

When conflicts wait in the inbox or dead letters wait, the summary says which
command lists them.

Exit codes: 0 the sync succeeded; 1 the push or a pull failed, or an op
failed (the error says which, once); 2 a mistake in the command line or the
config.`,
	Example: `  # Sync the replica of ./offsync.yaml:
  offsync sync

  # Another config, only two kinds:
  offsync sync --config client.yaml --kind note --kind task`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		ctx, stop := signalContext(cmd)
		defer stop()
		cfg, eng, err := openReplica(ctx)
		if err != nil {
			return err
		}
		defer eng.Close()
		return runSync(ctx, eng, cfg, cmd.OutOrStdout(), isTerminal(cmd.OutOrStdout()))
	},
}

// kindProgress is what was pulled of one kind.
type kindProgress struct {
	pulled, kept, pages int
	total               int64 // -1 when unknown
}

// pushedVersion is the version the server gave an op this sync pushed.
type pushedVersion struct {
	version time.Time
	delete  bool
}

// progress shows a sync's pulls as they happen and gathers what the summary
// needs.
type progress struct {
	out   io.Writer
	tty   bool
	kinds map[string]*kindProgress
	order []string
	bar   *progressbar.ProgressBar
	cur   string
	errs  []core.SyncError
	// pushed holds, per kind and id, the version of the last op applied.
	pushed map[string]map[string]pushedVersion
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
	case core.OpApplied:
		if p.pushed[ev.Op.Kind] == nil {
			p.pushed[ev.Op.Kind] = map[string]pushedVersion{}
		}
		p.pushed[ev.Op.Kind][ev.Op.ID] = pushedVersion{version: ev.Record.UpdatedAt, delete: ev.Op.Type == core.OpDelete}
	case core.SyncError:
		p.errs = append(p.errs, ev)
	}
}

// echoes counts, per kind, the rows the pull read back that are this
// sync's own pushes: the kind's cursor passed the version the server gave
// the push, and the local row still has that version (a newer edit from
// elsewhere would have been pulled in its place, and is a real pull).
func (p *progress) echoes(ctx context.Context, eng *core.Engine) map[string]int {
	out := map[string]int{}
	for kind, ids := range p.pushed {
		c, err := eng.Cursor(ctx, kind)
		if err != nil {
			continue
		}
		for id, pv := range ids {
			if c.Before(pv.version, id) {
				continue // the pull did not reach it
			}
			rec, err := eng.Get(ctx, kind, id)
			switch {
			case err == nil && rec.UpdatedAt.Equal(pv.version):
				out[kind]++
			case errors.Is(err, core.ErrNotFound) && pv.delete:
				out[kind]++
			}
		}
	}
	return out
}

// runSync runs one Sync of eng, showing progress on out, and prints a
// summary, hints to the commands that list what waits, and at most one
// error line per cause.
func runSync(ctx context.Context, eng *core.Engine, cfg *config.Client, out io.Writer, tty bool) error {
	sub := eng.Subscribe(1 << 14)
	p := &progress{out: out, tty: tty, kinds: map[string]*kindProgress{}, pushed: map[string]map[string]pushedVersion{}}
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

	echoes := p.echoes(ctx, eng)
	own := 0
	for _, kind := range p.order {
		k := p.kinds[kind]
		own += echoes[kind]
		line := fmt.Sprintf("  %-20s pulled %d, kept %d, in %d pages", kind, k.pulled-echoes[kind], k.kept, k.pages)
		if echoes[kind] > 0 {
			line += fmt.Sprintf(" (and %d own pushes read back)", echoes[kind])
		}
		fmt.Fprintln(out, line)
	}
	summary := fmt.Sprintf("synced in %s: pushed %d, pulled %d, kept %d, conflicts %d, resolved %d, errors %d, stuck %d",
		elapsed.Round(time.Millisecond), stats.Pushed, stats.Pulled-own, stats.Kept, stats.Conflicts, stats.Resolved, stats.Errors, stats.Stuck)
	if own > 0 {
		summary += fmt.Sprintf(" (and %d own pushes read back)", own)
	}
	fmt.Fprintln(out, summary)
	if stats.Kept > 0 {
		fmt.Fprintln(out, "  kept: rows this replica still has unsent edits of; they catch up when those edits are answered")
	}
	if stats.Stuck > 0 {
		fmt.Fprintln(out, "  stuck: ops not pushed by this sync (waiting conflicts, dead letters, retries backing off, or the server unreachable); see offsync status")
	}
	if n := sub.Dropped(); n > 0 {
		slog.Warn("progress events were dropped", "count", n)
	}
	hints(ctx, eng, out)
	if err == nil && stats.Errors == 0 {
		return nil
	}
	return syncFailure(ctx, cfg, err, p.errs, stats)
}

// hints tells where the conflicts and dead letters that wait are listed.
func hints(ctx context.Context, eng *core.Engine, out io.Writer) {
	if cs, err := eng.Conflicts(ctx, core.ConflictFilter{}); err == nil && len(cs) > 0 {
		fmt.Fprintf(out, "%d %s in the inbox: run `offsync conflicts list` (resolve with `offsync conflicts resolve`)\n",
			len(cs), plural(len(cs), "conflict waits", "conflicts wait"))
	}
	if dead, err := eng.DeadLetters(ctx); err == nil && len(dead) > 0 {
		fmt.Fprintf(out, "%d %s refused for good: run `offsync dead-letters list` (then retry or drop)\n",
			len(dead), plural(len(dead), "op was", "ops were"))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// syncFailure is the one error a failed sync returns: the server is not an
// offsync server, or it is unreachable (one line, whatever the number of
// kinds), or the distinct failures, each said once.
func syncFailure(ctx context.Context, cfg *config.Client, err error, evs []core.SyncError, stats core.Stats) error {
	var all []error
	if err != nil {
		all = append(all, err)
	}
	for _, ev := range evs {
		all = append(all, ev.Err)
	}
	network, other := 0, 0
	for _, e := range all {
		if errors.Is(e, core.ErrUnavailable) {
			network++
		} else {
			other++
		}
	}
	stays := fmt.Sprintf("%d %s in the outbox for the next sync", stats.Stuck, plural(stats.Stuck, "op stays", "ops stay"))
	if cfg.Transport.Driver == "rest" {
		// A URL that is not an offsync server's base (a wrong prefix, a web
		// page) fails every call in its own way: say what it is instead.
		switch state, msg := checkHealth(ctx, cfg.Transport.URL, cfg.Transport.Token); {
		case state == healthNotOffsync:
			return fmt.Errorf("sync: %s", msg)
		case state == healthDown && other == 0:
			return fmt.Errorf("sync: %s; %s", msg, stays)
		}
	}
	if network > 0 && other == 0 {
		return fmt.Errorf("sync: the server at %s did not answer: %s; %s", cfg.Transport.URL, rootCause(all[0]), stays)
	}
	var msgs []string
	seen := map[string]bool{}
	for _, e := range all {
		m := tidyError(e.Error())
		if !seen[m] {
			seen[m] = true
			msgs = append(msgs, m)
		}
	}
	sort.Strings(msgs)
	if len(msgs) == 1 {
		return fmt.Errorf("sync: %s", msgs[0])
	}
	return fmt.Errorf("sync: %d errors: %s", len(msgs), strings.Join(msgs, "; "))
}

// What GET /health says of a URL.
const (
	healthOK         = iota // an offsync server
	healthDown              // nothing answers, or it asks to retry later
	healthNotOffsync        // something answers, not as an offsync server
)

// checkHealth asks url's GET /health whether it is an offsync server, and
// says what answered when it is not. The token goes along, as the client's
// own requests carry it, so that what answers is what the client meets.
func checkHealth(ctx context.Context, url, token string) (state int, msg string) {
	base := strings.TrimRight(url, "/")
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
	if err != nil {
		return healthNotOffsync, fmt.Sprintf("transport.url %q is not a URL: %v", url, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return healthDown, fmt.Sprintf("cannot reach the server at %s: %s", url, rootCause(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var h struct {
		Protocol int `json:"protocol"`
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return healthDown, fmt.Sprintf("the server at %s is unavailable (GET /health: %s); retry later", url, resp.Status)
	case resp.StatusCode == http.StatusOK && json.Unmarshal(body, &h) == nil && h.Protocol > 0:
		return healthOK, ""
	}
	what := resp.Status
	if ct := resp.Header.Get("Content-Type"); ct != "" && resp.StatusCode == http.StatusOK {
		what += " (" + ct + ")"
	}
	return healthNotOffsync, fmt.Sprintf("%s does not answer GET /health as an offsync server: %s; "+
		"transport.url must be the server's base URL, the one /health, /batch and /{kind} are under", url, what)
}

// rootCause is the end of an error's text, what actually failed: the part
// after the last "unavailable, retry later: ", without net/http's naming of
// the request.
func rootCause(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, core.ErrUnavailable.Error()+": "); i >= 0 {
		msg = msg[i+len(core.ErrUnavailable.Error())+2:]
	}
	for _, m := range []string{"Get", "Post", "Put", "Delete", "Head"} {
		if strings.HasPrefix(msg, m+` "`) {
			if i := strings.Index(msg, `": `); i >= 0 {
				msg = msg[i+3:]
			}
			break
		}
	}
	return msg
}

// tidyError removes what an error chain repeats: the "offsync: " of every
// layer (the command prints one), and a part equal to the one before it.
func tidyError(msg string) string {
	msg = strings.ReplaceAll(msg, "offsync: ", "")
	parts := strings.Split(msg, ": ")
	out := parts[:0]
	for _, p := range parts {
		if len(out) > 0 && out[len(out)-1] == p {
			continue
		}
		out = append(out, p)
	}
	return strings.Join(out, ": ")
}

func init() {
	addConfigFlag(syncCmd)
	syncCmd.Flags().StringArrayVar(&syncKinds, "kind", nil, "sync only this kind (repeatable; default: every kind)")
	rootCmd.AddCommand(syncCmd)
}
