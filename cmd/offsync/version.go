package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// protocolVersion is the version of the sync contract (docs/protocol.md) this
// build speaks; /health reports the same number.
const protocolVersion = 1

// moduleVersion is the offsync module's version from the build information:
// a tag such as v0.3.0 when built with `go install ...@version`, "(devel)"
// when built from a checkout.
func moduleVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" {
		return "(devel)"
	}
	return bi.Main.Version
}

var versionJSON bool

var versionCmd = &cobra.Command{
	Use:   "version",
	Short: "Print offsync's version and protocol version",
	Example: `  offsync version
  offsync version --json`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		out := cmd.OutOrStdout()
		if versionJSON {
			return json.NewEncoder(out).Encode(map[string]any{
				"version":  moduleVersion(),
				"protocol": protocolVersion,
				"go":       runtime.Version(),
			})
		}
		_, err := fmt.Fprintf(out, "offsync %s (protocol %d, %s)\n", moduleVersion(), protocolVersion, runtime.Version())
		return err
	},
}

func init() {
	versionCmd.Flags().BoolVar(&versionJSON, "json", false, "print as a JSON object")
	rootCmd.AddCommand(versionCmd)
}
