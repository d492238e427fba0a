package faults_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
)

const childEnv = "FAULTS_TEST_CRASH_CHILD"

// TestCrashChild is the body of the child process of TestCrasherKillsChild;
// run directly, it does nothing.
func TestCrashChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		return
	}
	c, err := faults.CrasherFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	c.OnHit = func(point string, hit int) { fmt.Fprintf(os.Stdout, "hit %s %d\n", point, hit) }
	inj, err := faults.New(faults.Options{Checkpoint: c.Checkpoint})
	if err != nil {
		t.Fatal(err)
	}
	tr := faults.Wrap(newAuthority(0), inj)
	for i := range 5 {
		c.Checkpoint(faults.AfterLocalCommit)
		if _, err := tr.Push(t.Context(), ops(fmt.Sprint(i))); err != nil { // after_request_sent, after_authority_commit
			t.Fatal(err)
		}
		c.Checkpoint(faults.AfterAnswer)
		c.Checkpoint(faults.MidPageApply)
	}
	fmt.Fprintln(os.Stdout, "survived")
}

func runChild(t *testing.T, point string, hit int) (string, error) {
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1", faults.CrashEnvFor(point, hit))
	out, err := cmd.Output()
	return string(out), err
}

func TestCrasherKillsChild(t *testing.T) {
	for _, tc := range []struct {
		point string
		hit   int
	}{
		{faults.AfterLocalCommit, 1},
		{faults.AfterRequestSent, 2},
		{faults.AfterAuthorityCommit, 3},
		{faults.AfterAnswer, 4},
		{faults.MidPageApply, 5},
	} {
		out, err := runChild(t, tc.point, tc.hit)
		if !faults.Killed(err) {
			t.Fatalf("%s:%d: child ended with %v, want SIGKILL; output:\n%s", tc.point, tc.hit, err, out)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if last, want := lines[len(lines)-1], fmt.Sprintf("hit %s %d", tc.point, tc.hit); last != want {
			t.Fatalf("child's last hit %q, want %q", last, want)
		}
		t.Logf("%s:%d: killed after %d hits", tc.point, tc.hit, len(lines))
	}
	// Negative control: a hit never reached lets the child finish.
	out, err := runChild(t, faults.AfterAnswer, 6)
	if err != nil || faults.Killed(err) || !strings.Contains(out, "survived") {
		t.Fatalf("child with an unreached crash point: %v; output:\n%s", err, out)
	}
}

func TestCrasherInProcess(t *testing.T) {
	c, err := faults.NewCrasher(faults.AfterAnswer, 2)
	if err != nil {
		t.Fatal(err)
	}
	var crashes []string
	c.OnCrash = func(point string, hit int) { crashes = append(crashes, fmt.Sprint(point, ":", hit)) }
	for range 3 {
		c.Checkpoint(faults.AfterAnswer)
		c.Checkpoint(faults.MidPageApply)
	}
	if len(crashes) != 1 || crashes[0] != "after_answer:2" {
		t.Fatalf("crashes %v", crashes)
	}
	if c.Hits(faults.AfterAnswer) != 3 || c.Hits(faults.MidPageApply) != 3 || c.Hits(faults.AfterLocalCommit) != 0 {
		t.Fatal("wrong hit counts")
	}
	if got := faults.CrashEnvFor(faults.MidPageApply, 4); got != "OFFSYNC_CRASH_AT=mid_page_apply:4" {
		t.Fatal(got)
	}
	if faults.Killed(nil) || faults.Killed(errors.New("x")) {
		t.Fatal("Killed of a non-exit error")
	}
}

func TestCrasherBadConfig(t *testing.T) {
	for _, tc := range []struct {
		point string
		hit   int
	}{{"after_lunch", 1}, {faults.AfterAnswer, 0}, {faults.AfterAnswer, -2}} {
		if _, err := faults.NewCrasher(tc.point, tc.hit); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("NewCrasher(%q, %d): %v", tc.point, tc.hit, err)
		}
	}
	for _, v := range []string{"after_answer", "after_answer:x", "after_answer:0", "nowhere:1", ":1"} {
		t.Setenv(faults.CrashEnv, v)
		if _, err := faults.CrasherFromEnv(); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s=%q: %v", faults.CrashEnv, v, err)
		}
	}
	t.Setenv(faults.CrashEnv, "")
	c, err := faults.CrasherFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	c.Checkpoint(faults.AfterAnswer) // counts, never crashes
	if c.Hits(faults.AfterAnswer) != 1 {
		t.Fatal("hit not counted")
	}
}
