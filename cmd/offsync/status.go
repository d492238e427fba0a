package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/offsync/offsync/core"
)

var statusJSON bool

// statusReport is what `offsync status` prints.
type statusReport struct {
	Kinds       []kindStatus   `json:"kinds"`
	Outbox      map[string]int `json:"outbox"` // by state, every kind
	Conflicts   int            `json:"conflicts"`
	DeadLetters int            `json:"dead_letters"`
}

type kindStatus struct {
	Kind        string         `json:"kind"`
	Outbox      map[string]int `json:"outbox"`
	Cursor      *cursorJSON    `json:"cursor"`
	Conflicts   int            `json:"conflicts"`
	DeadLetters int            `json:"dead_letters"`
}

type cursorJSON struct {
	UpdatedAt string `json:"updated_at"`
	ID        string `json:"id"`
}

var statusCmd = &cobra.Command{
	Use:   "status",
	Short: "Show a replica's outbox, cursors, pending conflicts and dead letters",
	Long: `Show the state of the replica described by a client config, without
contacting the server: the outbox counted by kind and state, the pull cursor
of each kind (the last row applied), the conflicts waiting in the inbox and
the dead letters. It never creates a database: without one it says so.

The outbox states:

  PENDING     not sent yet; pushed at the next sync
  UNANSWERED  sent (or about to be) when a sync stopped, and no answer came
              back; the next sync sends it again, and the server applies it
              once (in JSON: "in_flight")
  DEFERRED    a conflict waiting in the inbox: offsync conflicts list
  DEAD        refused for good: offsync dead-letters list

With --watch it keeps the database open and reads it again every --interval
(Ctrl-C stops it): on a terminal the table is redrawn in place; otherwise
(a pipe, a file) it prints plain lines, each with its time, whenever the
figures change (with --json, one JSON object per line). The database does
not record when a sync ran: the watch says when it last saw one act (a
kind's cursor moved, or ops left the outbox).`,
	Example: `  offsync status
  offsync status --config client.yaml --json
  offsync status --watch --interval 1s
  offsync status --watch --count 3 | tee status.log`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		if statusWatch {
			return watchStatus(cmd)
		}
		for _, f := range []string{"interval", "count"} {
			if cmd.Flags().Changed(f) {
				return usageErrorf("--%s goes with --watch", f)
			}
		}
		ctx := cmd.Context()
		_, eng, err := openLocalReplica(ctx)
		if err != nil {
			return err
		}
		defer eng.Close()
		rep, err := collectStatus(ctx, eng)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if statusJSON {
			return writeJSON(out, rep)
		}
		if err := writeStatusTable(out, rep); err != nil {
			return err
		}
		if n := rep.Outbox[string(core.StateInFlight)]; n > 0 {
			fmt.Fprintf(out, "%d unanswered: a sync stopped before the server's answer came; the next sync sends %s again (applied once)\n",
				n, plural(n, "it", "them"))
		}
		hints(ctx, eng, out)
		return nil
	},
}

// collectStatus reads a replica's outbox, cursors, conflicts and dead
// letters.
func collectStatus(ctx context.Context, eng *core.Engine) (statusReport, error) {
	rep := statusReport{Outbox: map[string]int{}}
	byKind := map[string]*kindStatus{}
	for _, k := range eng.Kinds() {
		ks := &kindStatus{Kind: k, Outbox: map[string]int{}}
		c, err := eng.Cursor(ctx, k)
		if err != nil {
			return rep, fmt.Errorf("cursor of %s: %w", k, err)
		}
		if !c.IsZero() {
			ks.Cursor = &cursorJSON{UpdatedAt: core.FormatTime(c.UpdatedAt), ID: c.ID}
		}
		byKind[k] = ks
	}
	kind := func(k string) *kindStatus {
		if byKind[k] == nil {
			byKind[k] = &kindStatus{Kind: k, Outbox: map[string]int{}}
		}
		return byKind[k]
	}
	pending, err := eng.Pending(ctx)
	if err != nil {
		return rep, fmt.Errorf("outbox: %w", err)
	}
	for _, p := range pending {
		kind(p.Kind).Outbox[string(p.State)] += p.Count
		rep.Outbox[string(p.State)] += p.Count
	}
	conflicts, err := eng.Conflicts(ctx, core.ConflictFilter{})
	if err != nil {
		return rep, fmt.Errorf("conflicts: %w", err)
	}
	for _, c := range conflicts {
		kind(c.Kind).Conflicts++
		rep.Conflicts++
	}
	dead, err := eng.DeadLetters(ctx)
	if err != nil {
		return rep, fmt.Errorf("dead letters: %w", err)
	}
	for _, op := range dead {
		kind(op.Kind).DeadLetters++
		rep.DeadLetters++
	}
	for _, ks := range byKind {
		rep.Kinds = append(rep.Kinds, *ks)
	}
	sort.Slice(rep.Kinds, func(i, j int) bool { return rep.Kinds[i].Kind < rep.Kinds[j].Kind })
	return rep, nil
}

// writeStatusTable prints the table of a report and its totals line.
func writeStatusTable(out io.Writer, rep statusReport) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tPENDING\tUNANSWERED\tDEFERRED\tDEAD\tCONFLICTS\tCURSOR")
	for _, ks := range rep.Kinds {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", ks.Kind,
			ks.Outbox[string(core.StatePending)], ks.Outbox[string(core.StateInFlight)],
			ks.Outbox[string(core.StateDeferred)], ks.Outbox[string(core.StateDead)], ks.Conflicts, ks.cursorText())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "outbox: %d ops; conflicts: %d; dead letters: %d\n", rep.total(), rep.Conflicts, rep.DeadLetters)
	return err
}

// total is the number of ops in the outbox, every state.
func (r statusReport) total() int {
	n := 0
	for _, c := range r.Outbox {
		n += c
	}
	return n
}

// cursorText is the cursor as the table prints it.
func (ks kindStatus) cursorText() string {
	if ks.Cursor == nil {
		return "-"
	}
	return ks.Cursor.UpdatedAt + " " + ks.Cursor.ID
}

func init() {
	addConfigFlag(statusCmd)
	statusCmd.Flags().BoolVar(&statusJSON, "json", false, "print as JSON")
	rootCmd.AddCommand(statusCmd)
}
