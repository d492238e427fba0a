package resolvertest_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/offsync/offsync/conformance/resolvertest"
	"github.com/offsync/offsync/core"
)

type harness struct {
	r core.Resolver
	f resolvertest.Features
}

func (h harness) NewResolver(*testing.T) core.Resolver { return h.r }
func (h harness) Features() resolvertest.Features      { return h.f }

// batchOf makes a BatchResolver of r, for Manual's batch path.
type batchOf struct{ core.Resolver }

func (b batchOf) ResolveBatch(ctx context.Context, cs []core.Conflict) ([]core.Resolution, error) {
	out := make([]core.Resolution, len(cs))
	for i, c := range cs {
		r, err := b.Resolve(ctx, c)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// TestBuiltinStrategies runs the suite on every built-in strategy.
func TestBuiltinStrategies(t *testing.T) {
	merge := core.MergeWith(func(ctx context.Context, base, local, server map[string]any) (map[string]any, error) {
		if server == nil {
			return local, nil
		}
		return core.DefaultMerge(local, server), nil
	})
	for name, h := range map[string]harness{
		"autoPreserve":  {r: core.AutoPreserve},
		"serverWins":    {r: core.ServerWins},
		"clientWins":    {r: core.ClientWins},
		"lastWriteWins": {r: core.LastWriteWins},
		"merge":         {r: merge},
		"manual":        {r: core.Manual(core.ResolverFunc(func(context.Context, core.Conflict) (core.Resolution, error) { return core.Defer, nil }))},
		"manual-batch":  {r: core.Manual(batchOf{core.AutoPreserve}), f: resolvertest.Features{Batch: true}},
	} {
		t.Run(name, func(t *testing.T) { resolvertest.Run(t, h) })
	}
}

// Broken resolvers the suite must fail, each in a child process.
var broken = map[string]struct {
	h     harness
	tests string
	want  string
}{
	"reserved-field": {
		h: harness{r: core.ResolverFunc(func(context.Context, core.Conflict) (core.Resolution, error) {
			return core.AcceptMerged(map[string]any{"title": "x", "updated_at": "now"}), nil
		})},
		tests: "ValidResolutions", want: `AcceptMerged data has the reserved field "updated_at"`,
	},
	"reversed-batch": {
		h:     harness{r: reversed{core.LastWriteWins}, f: resolvertest.Features{Batch: true}},
		tests: "Batch", want: "differs from the single answer",
	},
	"unclaimed-batch": {
		h:     harness{r: batchOf{core.ServerWins}},
		tests: "Features", want: "is a core.BatchResolver but Features.Batch is not claimed",
	},
}

type reversed struct{ core.Resolver }

func (r reversed) ResolveBatch(ctx context.Context, cs []core.Conflict) ([]core.Resolution, error) {
	out, err := batchOf{r.Resolver}.ResolveBatch(ctx, cs)
	slices.Reverse(out)
	return out, err
}

const brokenEnv = "OFFSYNC_RESOLVERTEST_BROKEN"

// TestBrokenChild runs the suite on the broken resolver named by the
// environment; it is the child process of TestSuiteFailsOnBrokenResolvers.
func TestBrokenChild(t *testing.T) {
	name := os.Getenv(brokenEnv)
	if name == "" {
		t.Skip("runs only as the child process of TestSuiteFailsOnBrokenResolvers")
	}
	resolvertest.Run(t, broken[name].h)
}

func TestSuiteFailsOnBrokenResolvers(t *testing.T) {
	for name, b := range broken {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenChild$/^("+b.tests+")$", "-test.v")
			cmd.Env = append(os.Environ(), brokenEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if _, ok := err.(*exec.ExitError); !ok {
				t.Fatalf("the suite did not fail against the %s resolver (%v):\n%s", name, err, out)
			}
			if !strings.Contains(string(out), b.want) {
				t.Errorf("the suite failed against the %s resolver without saying %q:\n%s", name, b.want, out)
			}
		})
	}
}
