package main

// Test helpers shared by every _test.go file of the command (keep their
// names and signatures stable: other commands' tests use them):
//
//	offsyncBin                      the binary, built once by TestMain
//	runCLI(t, args...)              run it in the test's work directory
//	runCLIIn(t, dir, args...)       run it in dir
//	workDir(t)                      the test's work directory (a t.TempDir, one per test)
//	startServe(t, args...)          run `offsync serve --http 127.0.0.1:0 args...` in workDir(t)
//	                                and wait until /health answers
//	startServeIn(t, dir, args...)   the same in dir

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// offsyncBin is the path of the offsync binary built for the tests.
var offsyncBin string

// cliTimeout bounds one command run by the tests (a hang fails, it does not
// block the suite).
const cliTimeout = 60 * time.Second

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "offsync-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	offsyncBin = filepath.Join(dir, "offsync")
	build := exec.Command("go", "build", "-o", offsyncBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "go build:", err)
		return 1
	}
	return m.Run()
}

var workDirs sync.Map // *testing.T → string

// workDir returns the test's work directory: a t.TempDir made on first use
// and the same for the rest of the test.
func workDir(t testing.TB) string {
	t.Helper()
	if d, ok := workDirs.Load(t); ok {
		return d.(string)
	}
	d := t.TempDir()
	workDirs.Store(t, d)
	t.Cleanup(func() { workDirs.Delete(t) })
	return d
}

// runCLI runs offsync with args in workDir(t), with no standard input, and
// returns what it printed and its exit code.
func runCLI(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLIIn(t, workDir(t), args...)
}

// runCLIIn is runCLI in dir.
func runCLIIn(t testing.TB, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, offsyncBin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("offsync %s: no exit within %v\nstderr: %s", strings.Join(args, " "), cliTimeout, errb.String())
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("offsync %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// syncBuffer is a bytes.Buffer safe for a writer and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveProcess is a running `offsync serve`.
type serveProcess struct {
	URL  string // http://ADDR, no trailing slash
	Addr string // host:port it listens on
	Dir  string // its working directory (./offsync.db lives here by default)

	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	code   int
}

// Stderr returns its logs so far.
func (p *serveProcess) Stderr() string { return p.stderr.String() }

// Stdout returns what it printed on standard output so far.
func (p *serveProcess) Stdout() string { return p.stdout.String() }

// Signal sends sig to the process.
func (p *serveProcess) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// Wait waits for the process to exit and returns its exit code.
func (p *serveProcess) Wait(t testing.TB) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(cliTimeout):
		t.Fatalf("offsync serve did not exit within %v\nlogs:\n%s", cliTimeout, p.Stderr())
		return -1
	}
}

// Stop sends SIGTERM and returns the exit code.
func (p *serveProcess) Stop(t testing.TB) int {
	t.Helper()
	p.Signal(t, syscall.SIGTERM)
	return p.Wait(t)
}

var listeningRE = regexp.MustCompile(`listening on ([^\s"\\]+)`)

// startServe runs `offsync serve --http 127.0.0.1:0 args...` in workDir(t)
// (so the default --db is workDir(t)/offsync.db), waits until /health
// answers 200 and returns it; the process is killed at the end of the test
// if it is still running. Later flags win: args may name another --http.
func startServe(t testing.TB, args ...string) *serveProcess {
	t.Helper()
	return startServeIn(t, workDir(t), args...)
}

// startServeIn is startServe in dir.
func startServeIn(t testing.TB, dir string, args ...string) *serveProcess {
	t.Helper()
	full := append([]string{"serve", "--http", "127.0.0.1:0"}, args...)
	cmd := exec.Command(offsyncBin, full...)
	cmd.Dir = dir
	p := &serveProcess{Dir: dir, cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrC := make(chan string, 1)
	go func() {
		// Copy the logs, and hand over the address of the first
		// "listening on ADDR" line.
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.stderr.Write([]byte(line + "\n"))
			if m := listeningRE.FindStringSubmatch(line); m != nil && !sent {
				addrC <- m[1]
				sent = true
			}
		}
		_, _ = io.Copy(p.stderr, pipe)
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(addrC)
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case addr, ok := <-addrC:
		if !ok {
			<-p.done
			t.Fatalf("offsync %s exited with %d before listening\nlogs:\n%s", strings.Join(full, " "), p.code, p.Stderr())
		}
		p.Addr, p.URL = addr, "http://"+addr
	case <-time.After(cliTimeout):
		t.Fatalf("offsync serve did not log its address within %v\nlogs:\n%s", cliTimeout, p.Stderr())
	}
	// The listener is bound when the address is logged: /health answers now.
	resp, err := http.Get(p.URL + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v\nlogs:\n%s", err, p.Stderr())
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health: %s\nlogs:\n%s", resp.Status, p.Stderr())
	}
	return p
}
