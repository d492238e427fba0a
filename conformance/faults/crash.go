package faults

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/offsync/offsync/core"
)

// The crash points. The engine calls its Options.Checkpoint hook with these
// names; the wrappers of this package call Options.Checkpoint with
// AfterRequestSent and AfterAuthorityCommit.
const (
	AfterLocalCommit     = "after_local_commit"     // a local write and its outbox op are committed
	AfterRequestSent     = "after_request_sent"     // a push is on its way; the authority may not have it yet
	AfterAuthorityCommit = "after_authority_commit" // the authority committed the push; the answer is not back
	AfterAnswer          = "after_answer"           // the answer is back; the outbox is not updated yet
	MidPageApply         = "mid_page_apply"         // part of a pulled page is applied, its cursor is not
)

// Points lists the crash points.
var Points = []string{AfterLocalCommit, AfterRequestSent, AfterAuthorityCommit, AfterAnswer, MidPageApply}

// CrashEnv is the environment variable CrasherFromEnv reads: "point:hit",
// e.g. "after_answer:3" crashes at the third hit of AfterAnswer.
const CrashEnv = "OFFSYNC_CRASH_AT"

// CrashEnvFor returns the CrashEnv entry ("NAME=point:hit") that makes a
// child process crash at the hit-th hit of point, for exec.Cmd.Env.
func CrashEnvFor(point string, hit int) string {
	return fmt.Sprintf("%s=%s:%d", CrashEnv, point, hit)
}

// Crasher counts the hits of each crash point and crashes at one of them.
// Its Checkpoint method is the hook the engine and the wrappers call. It is
// safe for concurrent use.
type Crasher struct {
	at  string
	hit int

	// OnHit, when set, is called on every hit (before a crash).
	OnHit func(point string, hit int)
	// OnCrash replaces the crash when set; by default the process sends
	// itself SIGKILL, dying on the spot as in a power cut (no deferred
	// calls, no flushes).
	OnCrash func(point string, hit int)

	mu   sync.Mutex
	hits map[string]int
}

// NewCrasher returns a Crasher that crashes at the hit-th hit of point (an
// element of Points). An empty point never crashes and only counts. A point
// not in Points or a hit below 1 is an error wrapping core.ErrInvalid.
func NewCrasher(point string, hit int) (*Crasher, error) {
	if point != "" {
		if !slices.Contains(Points, point) {
			return nil, fmt.Errorf("faults: unknown crash point %q (known: %s): %w",
				point, strings.Join(Points, ", "), core.ErrInvalid)
		}
		if hit < 1 {
			return nil, fmt.Errorf("faults: crash hit %d of %s must be at least 1: %w", hit, point, core.ErrInvalid)
		}
	}
	return &Crasher{at: point, hit: hit, hits: map[string]int{}}, nil
}

// CrasherFromEnv returns a Crasher configured by CrashEnv; when the variable
// is unset or empty it never crashes. A malformed value is an error wrapping
// core.ErrInvalid.
func CrasherFromEnv() (*Crasher, error) {
	v := os.Getenv(CrashEnv)
	if v == "" {
		return NewCrasher("", 0)
	}
	point, n, ok := strings.Cut(v, ":")
	hit, err := strconv.Atoi(n)
	if !ok || err != nil || point == "" {
		return nil, fmt.Errorf("faults: %s=%q: want point:hit: %w", CrashEnv, v, core.ErrInvalid)
	}
	return NewCrasher(point, hit)
}

// Checkpoint records a hit of point and crashes if it is the configured hit.
func (c *Crasher) Checkpoint(point string) {
	c.mu.Lock()
	if c.hits == nil {
		c.hits = map[string]int{}
	}
	c.hits[point]++
	n := c.hits[point]
	c.mu.Unlock()
	if c.OnHit != nil {
		c.OnHit(point, n)
	}
	if point != c.at || n != c.hit {
		return
	}
	if c.OnCrash != nil {
		c.OnCrash(point, n)
		return
	}
	fmt.Fprintf(os.Stderr, "faults: crashing at %s hit %d\n", point, n)
	kill()
}

// Hits returns how many times point was hit.
func (c *Crasher) Hits(point string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits[point]
}
