package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/offsync/offsync/core"
)

var (
	deadJSON  bool
	deadKinds []string
)

// opJSON is an outbox op as printed.
type opJSON struct {
	OpID          string          `json:"op_id"`
	Kind          string          `json:"kind"`
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	BaseUpdatedAt string          `json:"base_updated_at,omitempty"`
	Attempts      int             `json:"attempts"`
	LastError     string          `json:"last_error"`
	EnqueuedAt    string          `json:"enqueued_at"`
	State         string          `json:"state"`
}

func toOpJSON(op core.Op) opJSON {
	o := opJSON{OpID: op.OpID, Kind: op.Kind, ID: op.ID, Type: string(op.Type), Payload: op.Payload,
		Attempts: op.Attempts, LastError: op.LastError, EnqueuedAt: formatTime(op.EnqueuedAt), State: string(op.State)}
	if !op.BaseUpdatedAt.IsZero() {
		o.BaseUpdatedAt = core.FormatTime(op.BaseUpdatedAt)
	}
	return o
}

var deadLettersCmd = &cobra.Command{
	Use:     "dead-letters",
	Aliases: []string{"deadletters"},
	Short:   "List, retry and drop the ops the server refused for good",
	Long: `A dead letter is an op the authority refused for good, or that failed more
times than sync.max_attempts. It stays in the outbox, never pushed again,
until it is retried (a fresh attempt budget; pushed at the next sync) or
dropped (the local row goes back to the server's version).`,
	Example: `  offsync dead-letters list
  offsync dead-letters retry 01HF7...
  offsync dead-letters drop 01HF7...`,
}

var deadListCmd = &cobra.Command{
	Use:     "list",
	Short:   "List the dead letters",
	Example: `  offsync dead-letters list --kind note --json`,
	Args:    cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		_, eng, err := openLocalReplica(ctx)
		if err != nil {
			return err
		}
		defer eng.Close()
		ops, err := eng.DeadLetters(ctx, deadKinds...)
		if err != nil {
			return err
		}
		return printList(cmd.OutOrStdout(), deadJSON, ops, toOpJSON, "no dead letters",
			"OP\tKIND\tID\tTYPE\tATTEMPTS\tERROR", func(op core.Op) string {
				return fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s", op.OpID, op.Kind, op.ID, op.Type, op.Attempts, tidyError(op.LastError))
			})
	},
}

// deadAction runs retry or drop on one dead op.
func deadAction(verb, done string, do func(*cobra.Command, string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := do(cmd, args[0]); err != nil {
			return fmt.Errorf("%s %s: %w", verb, args[0], err)
		}
		_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", done, args[0])
		return err
	}
}

var deadRetryCmd = &cobra.Command{
	Use:     "retry OPID",
	Short:   "Give a dead op a fresh attempt budget; it is pushed at the next sync",
	Example: `  offsync dead-letters retry 01HF7... && offsync sync`,
	Args:    cobra.ExactArgs(1),
	RunE: deadAction("retry", "retried", func(cmd *cobra.Command, opID string) error {
		_, eng, err := openReplica(cmd.Context())
		if err != nil {
			return err
		}
		defer eng.Close()
		return eng.Retry(cmd.Context(), opID)
	}),
}

var deadDropCmd = &cobra.Command{
	Use:   "drop OPID",
	Short: "Remove a dead op; its local row goes back to the server's version",
	Long: `Remove a dead op. Dropping always works, offline too: the op leaves the
outbox and its local row goes back to the authority's version. That version
is fetched from the server when it answers; when it does not (offline, or
it does not serve the kind) the row goes back to the version the edit
started from (or, for a create, is removed) and the next sync pulls any
newer one. The command says when the fetch was skipped and why.`,
	Example: `  offsync dead-letters drop 01HF7...`,
	Args:    cobra.ExactArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		_, eng, err := openReplica(ctx)
		if err != nil {
			return err
		}
		defer eng.Close()
		d, err := eng.DropOp(ctx, args[0])
		if err != nil {
			return fmt.Errorf("drop %s: %w", args[0], err)
		}
		w := cmd.OutOrStdout()
		if _, err := fmt.Fprintf(w, "dropped %s (%s %s/%s)\n", args[0], d.Op.Type, d.Op.Kind, d.Op.ID); err != nil {
			return err
		}
		if d.FetchSkipped != nil {
			fmt.Fprintf(w, "the server's version was not fetched: %v\n", d.FetchSkipped)
		}
		switch d.Restored {
		case core.RestoredServer:
			_, err = fmt.Fprintln(w, "the local row is the server's version")
		case core.RestoredBase:
			_, err = fmt.Fprintln(w, "the local row went back to the version the edit started from; the next sync pulls any newer one")
		case core.RestoredNone:
			_, err = fmt.Fprintln(w, "the local row was removed (no server version is known); the next sync pulls the kind again")
		}
		return err
	},
}

func init() {
	addConfigFlag(deadLettersCmd)
	deadLettersCmd.PersistentFlags().BoolVar(&deadJSON, "json", false, "print as JSON")
	deadListCmd.Flags().StringArrayVar(&deadKinds, "kind", nil, "only this kind (repeatable)")
	deadLettersCmd.AddCommand(deadListCmd, deadRetryCmd, deadDropCmd)
	rootCmd.AddCommand(deadLettersCmd)
}
