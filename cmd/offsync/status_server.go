package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
)

var (
	statusServerConfig string
	statusServerJSON   bool
)

// statusServerCmd is `offsync status server`: the authority's side.
var statusServerCmd = &cobra.Command{
	Use:   "server",
	Short: "Show the server's tombstones per kind: how many, and the collection horizon",
	Long: `Show, for each kind a server config serves, how many tombstones (deleted
records) its database holds, the oldest of them, and the kind's horizon: the
newest tombstone collected so far. A device whose pull position is older than
the horizon is told to pull the kind again from the start (reset_required).
Tombstones older than server.tombstone_retention are collected by a running
server; this command only reads the database named by the config.`,
	Example: `  offsync status server --config server.yaml
  offsync status server --config server.yaml --json`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		if statusServerConfig == "" {
			return usageErrorf("--config is required: the server config whose database to read")
		}
		cfg, err := config.LoadServer(statusServerConfig)
		if err != nil {
			return usageError{err}
		}
		kinds, err := offsync.ServerStatus(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if statusServerJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(map[string]any{"kinds": kinds})
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tTOMBSTONES\tOLDEST\tHORIZON")
		for _, k := range kinds {
			oldest, horizon := "-", "none collected"
			if !k.Oldest.IsZero() {
				oldest = core.FormatTime(k.Oldest)
			}
			if !k.Horizon.IsZero() {
				horizon = core.FormatTime(k.Horizon)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", k.Kind, k.Tombstones, oldest, horizon)
		}
		return tw.Flush()
	},
}

func init() {
	statusServerCmd.Flags().StringVarP(&statusServerConfig, "config", "c", "", "server config file (offsync serve --config)")
	statusServerCmd.Flags().BoolVar(&statusServerJSON, "json", false, "print JSON")
	statusCmd.AddCommand(statusServerCmd)
}
