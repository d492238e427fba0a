package faults_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
)

// Lose the answer of the second push: the authority commits it, the replica
// sees a retryable failure and must re-send the same op.
func Example() {
	ctx := context.Background()
	inj, err := faults.New(faults.Options{
		Seed: 1,
		Rules: []faults.Rule{
			{Fault: faults.DropAnswer, Method: faults.Push, Nth: 2},
			// Random faults: drop a tenth of the pulls, the same ones for Seed 1.
			{Fault: faults.DropRequest, Method: faults.Pull, Chance: 0.1},
		},
	})
	if err != nil {
		panic(err)
	}
	authority := newAuthority(0) // any core.Transport: a server.Service, a REST client...
	tr := faults.Wrap(authority, inj)

	for _, id := range []string{"a", "b", "c"} {
		_, err := tr.Push(ctx, ops(id))
		fmt.Printf("push %s: retry later=%v\n", id, errors.Is(err, core.ErrUnavailable))
	}
	fmt.Println("batches the authority committed:", len(authority.received()))
	fmt.Println(inj.Stats())
	// Output:
	// push a: retry later=false
	// push b: retry later=true
	// push c: retry later=false
	// batches the authority committed: 3
	// calls: Push=3 injected: drop_answer=1
}

// A child process that dies at the third hit of after_answer: the parent runs
// the test binary with faults.CrashEnvFor(faults.AfterAnswer, 3) in its
// environment and checks faults.Killed on its exit error.
func ExampleCrasher() {
	crasher, err := faults.CrasherFromEnv() // OFFSYNC_CRASH_AT=after_answer:3
	if err != nil {
		panic(err)
	}
	// Hand crasher.Checkpoint to the engine's Options.Checkpoint and to
	// faults.Options.Checkpoint; here the points are hit by hand.
	crasher.Checkpoint(faults.AfterLocalCommit)
	fmt.Println(crasher.Hits(faults.AfterLocalCommit))
	// Output: 1
}
