package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/offsync/offsync/core"
)

var (
	localJSON    bool
	localLimit   int
	localAfter   string
	localDeleted bool
)

var localCmd = &cobra.Command{
	Use:   "local",
	Short: "Read and write a replica's document kinds, for scripts and debugging",
	Long: `Read and write the local rows of a replica's document kinds (the kinds under
tables in the client config). Writes go through the replica's writer: the row
and its outbox op commit together, and the next sync pushes them.`,
	Example: `  offsync local put note n1 '{"title":"buy milk"}'
  echo '{"title":"from stdin"}' | offsync local put note n2 -
  offsync local get note n1 --json
  offsync local list note --limit 10
  offsync local delete note n1`,
}

// openDocuments opens the replica of the config and returns it with the
// document table of kind; the caller closes the engine.
func openDocuments(ctx context.Context, kind string) (*core.Engine, *core.DocumentTable, error) {
	_, eng, err := openReplica(ctx)
	if err != nil {
		return nil, nil, err
	}
	d, err := documentTable(eng, kind)
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	return eng, d, nil
}

// documentTable returns the document table of kind in eng.
func documentTable(eng *core.Engine, kind string) (*core.DocumentTable, error) {
	t, err := eng.Table(kind)
	if err != nil {
		return nil, usageErrorf("kind %q is not in the config's tables: %w", kind, err)
	}
	d, ok := t.(*core.DocumentTable)
	if !ok {
		return nil, usageErrorf("kind %q is not a document kind", kind)
	}
	return d, nil
}

// pendingOps returns the type of the last outbox op of each row of kind
// (only rows with ops): a row whose last op is a delete is deleted locally,
// though the store keeps it until the authority agrees.
func pendingOps(ctx context.Context, eng *core.Engine, kind, id string) (map[string]core.OpType, error) {
	out := map[string]core.OpType{}
	f := core.OpFilter{Kinds: []string{kind}}
	if id != "" {
		f = core.OpFilter{Kind: kind, ID: id}
	}
	err := eng.Store().View(ctx, func(ctx context.Context, tx core.Tx) error {
		ops, err := tx.Ops(ctx, f)
		for _, op := range ops {
			out[op.ID] = op.Type
		}
		return err
	})
	return out, err
}

// deletedAt is when rec was deleted: on the authority, or locally ("" when live).
func deletedAt(rec recordJSON, pending map[string]core.OpType) string {
	if rec.DeletedAt != "" {
		return rec.DeletedAt
	}
	if pending[rec.ID] == core.OpDelete {
		return "locally"
	}
	return ""
}

var localGetCmd = &cobra.Command{
	Use:     "get KIND ID",
	Short:   "Print one local row (its business fields, or the whole record with --json)",
	Example: `  offsync local get note n1 --json`,
	Args:    cobra.ExactArgs(2),
	RunE: func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		eng, _, err := openDocuments(ctx, args[0])
		if err != nil {
			return err
		}
		defer eng.Close()
		rec, err := eng.Get(ctx, args[0], args[1])
		if err != nil {
			return fmt.Errorf("get %s/%s: %w", args[0], args[1], err)
		}
		pending, err := pendingOps(ctx, eng, args[0], args[1])
		if err != nil {
			return err
		}
		r := toRecordJSON(&rec)
		r.Pending = string(pending[rec.ID])
		out := cmd.OutOrStdout()
		if localJSON {
			return writeJSON(out, r)
		}
		if d := deletedAt(*r, pending); d != "" {
			_, err := fmt.Fprintf(out, "(deleted %s)\n", d)
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", toRecordJSON(&rec).Data)
		return err
	},
}

var localPutCmd = &cobra.Command{
	Use:   "put KIND ID JSON",
	Short: "Write one local row (a JSON object of business fields; - reads standard input)",
	Example: `  offsync local put note n1 '{"title":"buy milk","done":false}'
  offsync local put note n2 - < note.json`,
	Args: cobra.ExactArgs(3),
	RunE: func(cmd *cobra.Command, args []string) error {
		raw := args[2]
		if raw == "-" {
			b, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("read standard input: %w", err)
			}
			raw = string(b)
		}
		var data map[string]any
		dec := json.NewDecoder(strings.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&data); err != nil || data == nil {
			return usageErrorf("the row must be a JSON object of business fields: %v", err)
		}
		if dec.More() {
			return usageErrorf("the row must be one JSON object, found more after it")
		}
		ctx := cmd.Context()
		eng, d, err := openDocuments(ctx, args[0])
		if err != nil {
			return err
		}
		defer eng.Close()
		if err := core.DocsFor(eng, d).Put(ctx, args[1], data); err != nil {
			return fmt.Errorf("put %s/%s: %w", args[0], args[1], err)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "put %s/%s\n", args[0], args[1])
		return err
	},
}

var localDeleteCmd = &cobra.Command{
	Use:     "delete KIND ID",
	Short:   "Delete one local row (the delete is pushed at the next sync)",
	Example: `  offsync local delete note n1`,
	Args:    cobra.ExactArgs(2),
	RunE: func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		eng, d, err := openDocuments(ctx, args[0])
		if err != nil {
			return err
		}
		defer eng.Close()
		if err := core.DocsFor(eng, d).Delete(ctx, args[1]); err != nil {
			return fmt.Errorf("delete %s/%s: %w", args[0], args[1], err)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted %s/%s\n", args[0], args[1])
		return err
	},
}

var localListCmd = &cobra.Command{
	Use:   "list KIND",
	Short: "List local rows of a kind, ordered by ID",
	Example: `  offsync local list note
  offsync local list note --after n100 --limit 50 --json`,
	Args: cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		if localLimit < 0 {
			return usageErrorf("--limit must not be negative")
		}
		ctx := cmd.Context()
		eng, _, err := openDocuments(ctx, args[0])
		if err != nil {
			return err
		}
		defer eng.Close()
		recs, err := eng.List(ctx, args[0], core.ListOptions{AfterID: localAfter, Limit: localLimit, IncludeDeleted: localDeleted})
		if err != nil {
			return fmt.Errorf("list %s: %w", args[0], err)
		}
		pending, err := pendingOps(ctx, eng, args[0], "")
		if err != nil {
			return err
		}
		items := make([]*recordJSON, 0, len(recs))
		for i := range recs {
			r := toRecordJSON(&recs[i])
			r.Pending = string(pending[r.ID])
			if !localDeleted && deletedAt(*r, pending) != "" {
				continue
			}
			items = append(items, r)
		}
		out := cmd.OutOrStdout()
		if localJSON {
			return writeJSON(out, items)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tVERSION\tPENDING\tDATA")
		for _, r := range items {
			ver := r.UpdatedAt
			if ver == "" {
				ver = "(not synced)"
			}
			data := string(r.Data)
			if d := deletedAt(*r, pending); d != "" {
				data = "(deleted " + d + ")"
			}
			p := r.Pending
			if p == "" {
				p = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, ver, p, data)
		}
		return tw.Flush()
	},
}

func init() {
	addConfigFlag(localCmd)
	localCmd.PersistentFlags().BoolVar(&localJSON, "json", false, "print as JSON")
	f := localListCmd.Flags()
	f.IntVar(&localLimit, "limit", 0, "at most this many rows (0: all)")
	f.StringVar(&localAfter, "after", "", "start after this ID")
	f.BoolVar(&localDeleted, "deleted", false, "include deleted rows (tombstones)")
	localCmd.AddCommand(localGetCmd, localPutCmd, localDeleteCmd, localListCmd)
	rootCmd.AddCommand(localCmd)
}
