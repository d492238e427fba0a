package loadtest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readyPrefix starts the line a child announces itself with.
const readyPrefix = "LOADTEST-READY "

// InChild reports whether this process is the child started with env set.
func InChild(env string) bool { return os.Getenv(env) != "" }

// Announce tells the parent the child is ready, with a one-line payload
// (an address, or JSON).
func Announce(payload string) {
	fmt.Printf("%s%s\n", readyPrefix, strings.ReplaceAll(payload, "\n", " "))
}

// AwaitParent blocks until the parent closes the child's standard input
// (or ends).
func AwaitParent() { _, _ = io.Copy(io.Discard, os.Stdin) }

// Child is a running child process.
type Child struct {
	// Pid is the child's process id (for RSSKB).
	Pid int
	// Payload is what the child announced.
	Payload string

	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{}
}

// StartChild runs this test binary again as a child running only the test
// function test, with env=1 set (and each "NAME=value" of extra), and waits
// for its announcement. The child ends when t's cleanup closes its standard
// input; its standard error is this process's.
func StartChild(t testing.TB, test, env string, extra ...string) *Child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^"+test+"$", "-test.timeout=0")
	cmd.Env = append(append(os.Environ(), env+"=1"), extra...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{Pid: cmd.Process.Pid, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	t.Cleanup(c.stop)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), readyPrefix); ok {
			c.Payload = p
			break
		}
	}
	if c.Payload == "" {
		t.Fatalf("the child %s announced nothing", test)
	}
	go func() {
		for sc.Scan() {
		}
		close(c.done)
	}()
	return c
}

// stop closes the child's standard input and waits for it; a child that
// has not ended after a minute is killed.
func (c *Child) stop() {
	_ = c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
	}
	_ = c.cmd.Wait()
}

// Kill ends the child at once with SIGKILL, as a crash would (nothing it
// holds is closed or flushed), and waits for it to be gone.
func (c *Child) Kill() error {
	if err := c.cmd.Process.Kill(); err != nil {
		return err
	}
	<-c.done
	return nil
}

// CPU is the CPU time the child has used (-1 when unknown).
func (c *Child) CPU() time.Duration { return CPU(c.Pid) }

// RSSKB is the child's resident set size in kB (-1 when unknown).
func (c *Child) RSSKB() int64 { return RSSKB(c.Pid) }

// RSSKB is the resident set size of process pid in kB, from
// /proc/PID/status (-1 where there is no /proc).
func RSSKB(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// EnvInt is the positive integer in the environment variable name, or def.
func EnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// Percentiles sums up latencies.
type Percentiles struct {
	N                   int
	P50, P99, P999, Max time.Duration
}

// Summarize sorts ds in place and returns its percentiles (zero when empty).
func Summarize(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return Percentiles{N: len(ds), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: ds[len(ds)-1]}
}

func (p Percentiles) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return fmt.Sprintf("n %d, p50 %v, p99 %v, p99.9 %v, max %v", p.N, r(p.P50), r(p.P99), r(p.P999), r(p.Max))
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's CPU
// times: 100 on every Linux port Go supports.
const clockTicks = 100

// CPU is the CPU time (user and system) process pid has used, from
// /proc/PID/stat; -1 where there is no /proc.
func CPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(ut+st) * time.Second / clockTicks
}

// LoadAvg is the machine's one-minute load average as /proc/loadavg
// states it ("?" where there is none): a figure taken on a busy machine
// says so.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
