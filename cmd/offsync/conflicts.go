package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/offsync/offsync/core"
)

var (
	conflictsJSON  bool
	conflictKinds  []string
	resolveAccept  string
	resolveData    string
	resolveDefer   bool
	resolveDiscard bool
)

// conflictJSON is a conflict inbox entry as printed.
type conflictJSON struct {
	OpID          string      `json:"op_id"`
	Kind          string      `json:"kind"`
	ID            string      `json:"id"`
	Type          string      `json:"type"`
	ChangedFields []string    `json:"changed_fields"`
	DetectedAt    string      `json:"detected_at"`
	Base          *recordJSON `json:"base"`
	Local         *recordJSON `json:"local"`
	Server        *recordJSON `json:"server"`
}

func toConflictJSON(c core.ConflictEntry) conflictJSON {
	return conflictJSON{
		OpID: c.OpID, Kind: c.Kind, ID: c.ID, Type: string(c.Type), ChangedFields: c.ChangedFields,
		DetectedAt: formatTime(c.DetectedAt),
		Base:       toRecordJSON(c.Base), Local: toRecordJSON(c.Local), Server: toRecordJSON(c.Server),
	}
}

var conflictsCmd = &cobra.Command{
	Use:   "conflicts",
	Short: "List, show and resolve the conflicts waiting in a replica's inbox",
	Long: `A conflict waits in the inbox when its kind's strategy deferred it (the manual
strategy, or a plugin that answered Defer). Its op stays in the outbox until it
is resolved; the decision takes effect at the next sync.`,
	Example: `  offsync conflicts list
  offsync conflicts show 01HF7...
  offsync conflicts resolve 01HF7... --accept server
  offsync conflicts resolve 01HF7... --accept merged --data '{"title":"both"}'`,
}

var conflictsListCmd = &cobra.Command{
	Use:   "list",
	Short: "List the conflicts waiting in the inbox",
	Example: `  offsync conflicts list
  offsync conflicts list --kind note --json`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		_, eng, err := openLocalReplica(ctx)
		if err != nil {
			return err
		}
		defer eng.Close()
		list, err := eng.Conflicts(ctx, core.ConflictFilter{Kinds: conflictKinds})
		if err != nil {
			return err
		}
		return printList(cmd.OutOrStdout(), conflictsJSON, list, toConflictJSON, "no conflicts",
			"OP\tKIND\tID\tTYPE\tDETECTED", func(c core.ConflictEntry) string {
				return fmt.Sprintf("%s\t%s\t%s\t%s\t%s", c.OpID, c.Kind, c.ID, c.Type, formatTime(c.DetectedAt))
			})
	},
}

// findConflict returns the inbox entry of an op.
func findConflict(list []core.ConflictEntry, opID string) (core.ConflictEntry, error) {
	for _, c := range list {
		if c.OpID == opID {
			return c, nil
		}
	}
	return core.ConflictEntry{}, fmt.Errorf("conflict %q: %w", opID, core.ErrNotFound)
}

var conflictsShowCmd = &cobra.Command{
	Use:     "show OPID",
	Short:   "Show one conflict: the base, local and server versions",
	Example: `  offsync conflicts show 01HF7... --json`,
	Args:    cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		_, eng, err := openLocalReplica(ctx)
		if err != nil {
			return err
		}
		defer eng.Close()
		list, err := eng.Conflicts(ctx, core.ConflictFilter{})
		if err != nil {
			return err
		}
		c, err := findConflict(list, args[0])
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		cj := toConflictJSON(c)
		if conflictsJSON {
			return writeJSON(out, cj)
		}
		fmt.Fprintf(out, "op:       %s\nrecord:   %s/%s\ntype:     %s\ndetected: %s\n", c.OpID, c.Kind, c.ID, c.Type, cj.DetectedAt)
		if c.ChangedFields != nil {
			fmt.Fprintf(out, "changed:  %v\n", c.ChangedFields)
		}
		for _, v := range []struct {
			name string
			r    *recordJSON
		}{{"base", cj.Base}, {"local", cj.Local}, {"server", cj.Server}} {
			if v.r == nil {
				fmt.Fprintf(out, "%-8s  (none)\n", v.name+":")
				continue
			}
			line := fmt.Sprintf("%-8s  %s", v.name+":", v.r.Data)
			if v.r.UpdatedAt != "" {
				line += "  (version " + v.r.UpdatedAt + ")"
			}
			if v.r.DeletedAt != "" {
				line += "  (deleted " + v.r.DeletedAt + ")"
			}
			fmt.Fprintln(out, line)
		}
		return nil
	},
}

var conflictsResolveCmd = &cobra.Command{
	Use:   "resolve OPID (--accept server|client|merged [--data JSON] | --defer | --discard)",
	Short: "Settle a conflict; the decision takes effect at the next sync",
	Long: `Settle a deferred conflict:

  --accept server   drop the local change; the row takes the server's version
  --accept client   push the local change again, forced
  --accept merged   push --data (a JSON object of business fields) on top of
                    the server's version
  --defer           leave it in the inbox
  --discard         drop the op; the row takes the server's version`,
	Example: `  offsync conflicts resolve 01HF7... --accept client
  offsync conflicts resolve 01HF7... --accept merged --data '{"title":"both","done":true}'
  offsync conflicts resolve 01HF7... --discard`,
	Args: cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		res, err := resolutionFromFlags(cmd)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		_, eng, err := openReplica(ctx)
		if err != nil {
			return err
		}
		defer eng.Close()
		list, err := eng.Conflicts(ctx, core.ConflictFilter{})
		if err != nil {
			return err
		}
		if _, err := findConflict(list, args[0]); err != nil {
			return err
		}
		if err := eng.Resolve(ctx, args[0], res); err != nil {
			return fmt.Errorf("resolve %s: %w", args[0], err)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "resolved %s: %s (takes effect at the next sync)\n", args[0], describeResolution(res))
		return err
	},
}

// resolutionFromFlags reads the decision of `conflicts resolve`.
func resolutionFromFlags(cmd *cobra.Command) (core.Resolution, error) {
	n := 0
	for _, set := range []bool{resolveAccept != "", resolveDefer, resolveDiscard} {
		if set {
			n++
		}
	}
	if n != 1 {
		return core.Resolution{}, usageErrorf("give exactly one of --accept, --defer and --discard")
	}
	if resolveData != "" && resolveAccept != "merged" {
		return core.Resolution{}, usageErrorf("--data goes with --accept merged")
	}
	switch {
	case resolveDefer:
		return core.Defer, nil
	case resolveDiscard:
		return core.Discard, nil
	}
	switch resolveAccept {
	case "server":
		return core.AcceptServer, nil
	case "client":
		return core.AcceptClient, nil
	case "merged":
		if resolveData == "" {
			return core.Resolution{}, usageErrorf("--accept merged needs --data JSON (the merged business fields)")
		}
		var data map[string]any
		if err := json.Unmarshal([]byte(resolveData), &data); err != nil || data == nil {
			return core.Resolution{}, usageErrorf("--data must be a JSON object: %v", err)
		}
		return core.AcceptMerged(data), nil
	}
	return core.Resolution{}, usageErrorf("--accept %q: want server, client or merged", resolveAccept)
}

func describeResolution(r core.Resolution) string {
	switch r.Action {
	case core.ActionAcceptServer:
		return "accept server"
	case core.ActionAcceptClient:
		return "accept client"
	case core.ActionAcceptMerged:
		return "accept merged"
	case core.ActionDefer:
		return "defer"
	case core.ActionDiscard:
		return "discard"
	}
	return fmt.Sprint(r.Action)
}

func init() {
	addConfigFlag(conflictsCmd)
	conflictsCmd.PersistentFlags().BoolVar(&conflictsJSON, "json", false, "print as JSON")
	conflictsListCmd.Flags().StringArrayVar(&conflictKinds, "kind", nil, "only this kind (repeatable)")
	f := conflictsResolveCmd.Flags()
	f.StringVar(&resolveAccept, "accept", "", "server, client or merged")
	f.StringVar(&resolveData, "data", "", "with --accept merged: the merged business fields as a JSON object")
	f.BoolVar(&resolveDefer, "defer", false, "leave the conflict in the inbox")
	f.BoolVar(&resolveDiscard, "discard", false, "drop the op; the row takes the server's version")
	_ = conflictsResolveCmd.RegisterFlagCompletionFunc("accept", cobra.FixedCompletions([]string{"server", "client", "merged"}, cobra.ShellCompDirectiveNoFileComp))
	conflictsCmd.AddCommand(conflictsListCmd, conflictsShowCmd, conflictsResolveCmd)
	rootCmd.AddCommand(conflictsCmd)
}

// printList writes items as a JSON array (asJSON), or as a table with header
// and one row each, or the empty line when there are none.
func printList[T, J any](out io.Writer, asJSON bool, items []T, toJSON func(T) J, empty, header string, row func(T) string) error {
	if asJSON {
		js := make([]J, 0, len(items))
		for _, it := range items {
			js = append(js, toJSON(it))
		}
		return writeJSON(out, js)
	}
	if len(items) == 0 {
		_, err := fmt.Fprintln(out, empty)
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	return tw.Flush()
}
