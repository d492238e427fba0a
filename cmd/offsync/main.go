package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes of the offsync command.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// usageError marks an error as the user's misuse of the command line: the
// command exits with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usageErrorf returns an error that makes offsync exit with code 2.
func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

var rootCmd = &cobra.Command{
	Use:   "offsync",
	Short: "Offline-first sync: a reference server and tools for replicas",
	Long: `offsync keeps local databases (replicas) in sync with an authority.

Start the reference server on a fresh directory:

  offsync serve

then check it answers:

  curl localhost:8080/health

Exit codes (every command):

  0  success
  1  the work failed: the server refused or could not be reached, an op
     failed, a record or op was not found, no local database exists
  2  a mistake in the command line or the config file (nothing was done)

The wire contract is docs/protocol.md; what offsync guarantees, with the
test proving each promise, is docs/guarantees.md.`,
	Example: `  offsync serve --db ./offsync.db --http 127.0.0.1:8080
  offsync version
  offsync completion bash > /etc/bash_completion.d/offsync`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

func init() {
	// A bad flag value is a usage error (exit 2), like an unknown flag.
	rootCmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{err}
	})
}

func main() {
	os.Exit(execute(os.Args[1:]))
}

// execute runs the command line args and returns the exit code.
func execute(args []string) int {
	rootCmd.SetArgs(args)
	cmd, err := rootCmd.ExecuteC()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "offsync: %v\n", err)
	if isUsageError(cmd, err) {
		if cmd != nil {
			fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	}
	return exitFailure
}

// isUsageError tells a misuse of the command line from a failure of the work.
func isUsageError(cmd *cobra.Command, err error) bool {
	var ue usageError
	if errors.As(err, &ue) {
		return true
	}
	// Cobra reports unknown commands and argument-count mistakes as plain
	// errors before RunE runs; RunE's own errors are wrapped by none.
	if cmd == nil || !cmdRan[cmd] {
		return true
	}
	return false
}

// cmdRan records the commands whose RunE was entered, so that an error from
// cobra itself (before RunE) counts as a usage error.
var cmdRan = map[*cobra.Command]bool{}

func init() {
	// Run every PersistentPreRun on the path, so a subcommand's own hook does
	// not hide this one.
	cobra.EnableTraverseRunHooks = true
	rootCmd.PersistentPreRun = func(cmd *cobra.Command, args []string) { cmdRan[cmd] = true }
}
