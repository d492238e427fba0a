package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	// Every first-party driver, registered by name: the stores and
	// transports the harness runs on.
	_ "github.com/offsync/offsync"
)

// workerArg makes the test binary a bench worker: run with workerArg,
// "--spec" and a Spec as JSON, it performs the Spec instead of the tests
// (as `offsync bench-worker` does for the offsync binary).
const workerArg = "bench-worker"

func TestMain(m *testing.M) {
	if len(os.Args) == 4 && os.Args[1] == workerArg && os.Args[2] == "--spec" {
		os.Exit(worker(os.Args[3]))
	}
	os.Exit(m.Run())
}

func worker(specJSON string) int {
	var spec Spec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "bench worker: --spec:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Worker(ctx, spec, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench worker:", err)
		return 1
	}
	return 0
}

// workerCommand is Config.Command for this test binary.
func workerCommand() []string { return []string{os.Args[0], workerArg} }
