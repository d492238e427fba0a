package transporttest_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/offsync/offsync/conformance/transporttest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
)

// The suite must fail against broken transports. Each one wraps the
// in-process client with a defect; the suite runs against it in a child
// process (a failing suite fails its test), and the parent checks that the
// child failed with the expected message.

type harness struct {
	wrap func(core.Transport) core.Transport
}

func (harness) NewStore(t *testing.T) core.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (h harness) NewClient(t *testing.T, authority core.Transport, o transporttest.ClientOptions) core.Transport {
	c := transporttest.InProcess(authority, o.Token)
	if h.wrap != nil {
		return h.wrap(c)
	}
	return c
}

func (h harness) Features() transporttest.Features {
	if h.wrap != nil { // the broken clients are bare core.Transports
		return transporttest.Features{}
	}
	return transporttest.Features{Realtime: true, Batch: true, Getter: true}
}

var keys atomic.Int64

// keyless sends each op under a fresh idempotency key, as a client that
// makes a key per request instead of carrying the op's OpID would.
func keyless(ctx context.Context, inner core.Transport, ops []core.Op) ([]core.PushResult, error) {
	sent := make([]core.Op, len(ops))
	for i, op := range ops {
		op.OpID = fmt.Sprintf("fresh-%d", keys.Add(1))
		sent[i] = op
	}
	res, err := inner.Push(ctx, sent)
	for i := range res {
		if i < len(ops) {
			res[i].OpID = ops[i].OpID
		}
	}
	return res, err
}

// duplicating delivers every push twice without idempotency keys, so the
// authority applies (or conflicts on) the second delivery.
type duplicating struct{ core.Transport }

func (d duplicating) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	if _, err := keyless(ctx, d.Transport, ops); err != nil {
		return nil, err
	}
	return keyless(ctx, d.Transport, ops)
}

// caching409 keeps a conflict under the op's idempotency key and answers
// every later push of that key with it, as the seed's server does.
type caching409 struct {
	core.Transport
	mu    sync.Mutex
	cache map[string]core.PushResult
}

func (c *caching409) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	out := make([]core.PushResult, 0, len(ops))
	for _, op := range ops {
		c.mu.Lock()
		cached, ok := c.cache[op.OpID]
		c.mu.Unlock()
		if ok {
			out = append(out, cached)
			continue
		}
		res, err := c.Transport.Push(ctx, []core.Op{op})
		if err != nil {
			return nil, err
		}
		if res[0].Status == core.StatusConflict {
			c.mu.Lock()
			c.cache[op.OpID] = res[0]
			c.mu.Unlock()
		}
		out = append(out, res[0])
	}
	return out, nil
}

// losingAnswers has no idempotency keys and loses the answer to the first
// push of every op after the authority committed it.
type losingAnswers struct {
	core.Transport
	mu   sync.Mutex
	seen map[string]bool
}

func (l *losingAnswers) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	res, err := keyless(ctx, l.Transport, ops)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lose := false
	for _, op := range ops {
		if !l.seen[op.OpID] {
			l.seen[op.OpID], lose = true, true
		}
	}
	if lose {
		return nil, fmt.Errorf("connection reset after the commit: %w", core.ErrUnavailable)
	}
	return res, nil
}

var broken = map[string]struct {
	wrap  func(core.Transport) core.Transport
	tests string // the suite's tests the child runs
	want  []string
}{
	"duplicating": {
		wrap:  func(c core.Transport) core.Transport { return duplicating{c} },
		tests: "DuplicateDelivery|PushPull",
		want:  []string{"times at the authority, want once", "does the transport carry the op's OpID as its idempotency key?"},
	},
	"caching409": {
		wrap: func(c core.Transport) core.Transport {
			return &caching409{Transport: c, cache: map[string]core.PushResult{}}
		},
		tests: "ForcedRetryAfterConflict",
		want:  []string{"the forced retry of a conflicted op was not applied", "a 409 must not be kept under the idempotency key"},
	},
	"losingAnswers": {
		wrap:  func(c core.Transport) core.Transport { return &losingAnswers{Transport: c, seen: map[string]bool{}} },
		tests: "LostAnswer|PushPull",
		want:  []string{"re-sending a push whose answer was lost made", "applied 2 times at the authority, want once"},
	},
}

const brokenEnv = "OFFSYNC_TRANSPORTTEST_BROKEN"

// TestBrokenChild runs the suite against the broken transport named by
// the environment; it is the child process of TestSuiteFailsOnBrokenTransports.
func TestBrokenChild(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("runs only as the child process of TestSuiteFailsOnBrokenTransports")
	}
	transporttest.Run(t, harness{wrap: broken[name].wrap})
}

func TestSuiteFailsOnBrokenTransports(t *testing.T) {
	for name, b := range broken {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenChild$/^("+b.tests+")$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed against the %s transport:\n%s", name, out)
			}
			if _, ok := err.(*exec.ExitError); !ok {
				t.Fatalf("child: %v", err)
			}
			for _, w := range b.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("the suite failed against the %s transport without saying %q:\n%s", name, w, out)
				}
			}
		})
	}
}

// TestSuitePassesInProcess is the control: the same harness without a
// defect passes the scenarios the broken transports fail.
func TestSuitePassesInProcess(t *testing.T) {
	for _, tc := range transporttest.Tests() {
		switch tc.Name {
		case "DuplicateDelivery", "ForcedRetryAfterConflict", "LostAnswer", "PushPull", "Features":
			t.Run(tc.Name, func(t *testing.T) { tc.Fn(t, harness{}) })
		}
	}
}
