//go:build unix

package faults

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

func kill() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

// Killed reports whether err, from exec.Cmd.Run or Wait, says the child
// process died of SIGKILL, as a Crasher makes it.
func Killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}
