package faults

import (
	"context"
	"testing"

	"github.com/offsync/offsync/core"
)

// every is a transport with every optional power; its methods are never
// called here.
type every struct{}

func (every) Pull(context.Context, core.PullRequest) (core.Page, error)       { return core.Page{}, nil }
func (every) Push(context.Context, []core.Op) ([]core.PushResult, error)      { return nil, nil }
func (every) Unwrap() core.Transport                                          { return nil }
func (every) Get(context.Context, string, string) (core.Record, error)        { return core.Record{}, nil }
func (every) Subscribe(context.Context, []string) (<-chan core.Notice, error) { return nil, nil }
func (every) BatchLimits(context.Context) (core.BatchLimits, error)           { return core.BatchLimits{}, nil }
func (every) PushDepth() int                                                  { return 2 }
func (every) PullPages(context.Context, core.PullRequest, func(core.Page) error) error {
	return nil
}

// powerSet is the set of optional powers v has, found by type assertion.
func powerSet(v any) int {
	n := 0
	for bit, has := range [...]bool{is[core.Getter](v), is[core.Subscriber](v), is[core.Batcher](v),
		is[core.Pipeliner](v), is[core.PageStreamer](v)} {
		if has {
			n |= 1 << bit
		}
	}
	return n
}

func is[I any](v any) bool { _, ok := v.(I); return ok }

// onlyPowers returns the powers of e that set holds.
func onlyPowers(e every, set int) powers {
	var p powers
	if set&hasGetter != 0 {
		p.g = e
	}
	if set&hasSubscriber != 0 {
		p.s = e
	}
	if set&hasBatcher != 0 {
		p.b = e
	}
	if set&hasPipeliner != 0 {
		p.p = e
	}
	if set&hasStreamer != 0 {
		p.ps = e
	}
	return p
}

// TestPowerTable: each entry of withPowers has exactly the powers of its
// index, and Wrap over a transport of each set keeps exactly that set.
func TestPowerTable(t *testing.T) {
	inj, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for set := range powerSets {
		p := onlyPowers(every{}, set)
		if p.set() != set {
			t.Fatalf("powers.set() = %05b for the powers of %05b", p.set(), set)
		}
		inner := withPowers[set](every{}, p)
		if got := powerSet(inner); got != set {
			t.Fatalf("withPowers[%05b] has the powers %05b", set, got)
		}
		if _, ok := inner.(Unwrapper); !ok {
			t.Fatalf("withPowers[%05b] hides Unwrap", set)
		}
		w := Wrap(inner, inj)
		if got := powerSet(w); got != set {
			t.Errorf("Wrap over a transport with the powers %05b has %05b", set, got)
		}
		if u, ok := w.(Unwrapper); !ok || u.Unwrap() != inner {
			t.Errorf("Wrap over %05b: Unwrap does not return the inner transport", set)
		}
		if pl, ok := w.(core.Pipeliner); ok && pl.PushDepth() != 2 {
			t.Errorf("Wrap over %05b: PushDepth %d, want the inner's 2", set, pl.PushDepth())
		}
	}
}
