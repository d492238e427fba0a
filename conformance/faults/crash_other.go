//go:build !unix

package faults

import (
	"errors"
	"os"
	"os/exec"
)

// killedCode is the exit code a crash uses where SIGKILL does not exist.
const killedCode = 137

func kill() { os.Exit(killedCode) }

// Killed reports whether err, from exec.Cmd.Run or Wait, says the child
// process died the way a Crasher makes it (exit code 137 here).
func Killed(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == killedCode
}
