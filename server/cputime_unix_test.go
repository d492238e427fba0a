//go:build unix

package server_test

import "syscall"

// cpuTime is the process's CPU time so far in nanoseconds (user and
// system), for benchmarks on a machine whose other load makes wall-clock
// figures noisy.
func cpuTime() int64 {
	var r syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &r) != nil {
		return 0
	}
	return r.Utime.Nano() + r.Stime.Nano()
}
