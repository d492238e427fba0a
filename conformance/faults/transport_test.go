package faults_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
)

func newInjector(t *testing.T, opts faults.Options) *faults.Injector {
	t.Helper()
	inj, err := faults.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return inj
}

func TestDropRequest(t *testing.T) {
	ctx := t.Context()
	a := newAuthority(3)
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.DropRequest, Method: faults.Push, Nth: 2}}})
	tr := faults.Wrap(full(a), inj)

	if _, err := tr.Push(ctx, ops("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Push(ctx, ops("b")); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("2nd push: got %v, want ErrUnavailable", err)
	}
	if _, err := tr.Push(ctx, ops("c")); err != nil {
		t.Fatal(err)
	}
	got := a.received()
	if len(got) != 2 || got[0][0].ID != "a" || got[1][0].ID != "c" {
		t.Fatalf("authority received %v, want a then c", got)
	}
	// The other methods drop too.
	all := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.DropRequest}}})
	tr = faults.Wrap(full(a), all)
	if _, err := tr.Pull(ctx, core.PullRequest{Kind: "todo"}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("pull: %v", err)
	}
	if _, err := tr.(core.Getter).Get(ctx, "todo", "t01"); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("get: %v", err)
	}
	if _, err := tr.(core.Batcher).BatchLimits(ctx); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("batch limits: %v", err)
	}
	if _, err := tr.(core.Subscriber).Subscribe(ctx, []string{"todo"}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("subscribe: %v", err)
	}
	if p, g, l := a.counts(); p+g+l != 0 {
		t.Fatalf("authority saw pulls=%d gets=%d limits=%d after dropped requests", p, g, l)
	}
	if s := all.Stats(); s.Injected[faults.DropRequest] != 4 {
		t.Fatalf("stats %v", s)
	}
}

func TestDropAnswer(t *testing.T) {
	ctx := t.Context()
	a := newAuthority(3)
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.DropAnswer, Method: faults.Push, Nth: 3}}})
	tr := faults.Wrap(full(a), inj)
	for i, id := range []string{"a", "b", "c", "d"} {
		res, err := tr.Push(ctx, ops(id))
		if i == 2 {
			if !errors.Is(err, core.ErrUnavailable) || res != nil {
				t.Fatalf("3rd push: got %v, %v; want no results and ErrUnavailable", res, err)
			}
			continue
		}
		if err != nil || len(res) != 1 || res[0].Status != core.StatusApplied {
			t.Fatalf("push %d: %v, %v", i+1, res, err)
		}
	}
	if got := a.received(); len(got) != 4 || got[2][0].ID != "c" {
		t.Fatalf("the authority must have committed every push, the 3rd included: %v", got)
	}
	s := inj.Stats()
	if s.Injected[faults.DropAnswer] != 1 || s.Calls[faults.Push] != 4 || s.Total() != 1 {
		t.Fatalf("stats %v", s)
	}

	// Get, Pull and BatchLimits reach the authority and lose the answer.
	all := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.DropAnswer}}})
	tr = faults.Wrap(full(a), all)
	if _, err := tr.Pull(ctx, core.PullRequest{Kind: "todo"}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("pull: %v", err)
	}
	if _, err := tr.(core.Getter).Get(ctx, "todo", "t01"); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("get: %v", err)
	}
	if _, err := tr.(core.Batcher).BatchLimits(ctx); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("batch limits: %v", err)
	}
	if p, g, l := a.counts(); p != 1 || g != 1 || l != 1 {
		t.Fatalf("authority saw pulls=%d gets=%d limits=%d, want 1 each", p, g, l)
	}
}

func TestDuplicate(t *testing.T) {
	ctx := t.Context()
	a := newAuthority(3)
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.Duplicate, Method: faults.Push, Times: 1}}})
	tr := faults.Wrap(full(a), inj)
	batch := ops("a", "b")
	res, err := tr.Push(ctx, batch)
	if err != nil || len(res) != 2 {
		t.Fatalf("push: %v, %v", res, err)
	}
	got := a.received()
	if len(got) != 2 || !slices.Equal(opIDs(got[0]), opIDs(batch)) || !slices.Equal(opIDs(got[1]), opIDs(batch)) {
		t.Fatalf("authority received %v, want the batch twice", got)
	}
	// The caller gets the second delivery's answer: the authority stamped it later.
	if want := a.version; !res[1].Record.UpdatedAt.Equal(want) {
		t.Fatalf("answer version %v, want the second delivery's %v", res[1].Record.UpdatedAt, want)
	}
	if _, err := tr.Push(ctx, ops("c")); err != nil {
		t.Fatal(err)
	}
	if n := len(a.received()); n != 3 {
		t.Fatalf("Times 1: the second push was duplicated too (%d batches)", n)
	}
	if _, err := tr.(core.Getter).Get(ctx, "todo", "t00"); err != nil {
		t.Fatal(err)
	}
	if s := inj.Stats(); s.Injected[faults.Duplicate] != 1 {
		t.Fatalf("stats %v", s)
	}

	pulls := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.Duplicate}}})
	tr = faults.Wrap(full(a), pulls)
	if _, err := tr.Pull(ctx, core.PullRequest{Kind: "todo"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.(core.Getter).Get(ctx, "todo", "t00"); err != nil {
		t.Fatal(err)
	}
	if p, g, _ := a.counts(); p != 2 || g != 3 {
		t.Fatalf("pulls=%d gets=%d, want 2 and 3", p, g)
	}
}

func TestDelayRelease(t *testing.T) {
	ctx := t.Context()
	a := newAuthority(3)
	release := make(chan struct{})
	decided := make(chan struct{}, 1)
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{
		Fault: faults.Delay, Method: faults.Push, Release: release, Times: 1,
		Match: func(faults.Call) bool { decided <- struct{}{}; return true },
	}}})
	tr := faults.Wrap(full(a), inj)
	done := make(chan error, 1)
	go func() {
		_, err := tr.Push(ctx, ops("a"))
		done <- err
	}()
	<-decided
	// The push is held: another call goes through meanwhile.
	if _, err := tr.Pull(ctx, core.PullRequest{Kind: "todo"}); err != nil {
		t.Fatal(err)
	}
	if n := len(a.received()); n != 0 {
		t.Fatalf("a held push reached the authority (%d batches)", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(a.received()); n != 1 {
		t.Fatalf("released push: %d batches, want 1", n)
	}
	if s := inj.Stats(); s.Injected[faults.Delay] != 1 {
		t.Fatalf("stats %v", s)
	}
}

func TestDelayHonoursContext(t *testing.T) {
	a := newAuthority(3)
	decided := make(chan struct{}, 1)
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{
		Fault: faults.Delay, Delay: time.Hour,
		Match: func(faults.Call) bool { decided <- struct{}{}; return true },
	}}})
	tr := faults.Wrap(full(a), inj)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := tr.Push(ctx, ops("a"))
		done <- err
	}()
	<-decided
	cancel()
	err := <-done
	if !errors.Is(err, core.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want ErrUnavailable and context.Canceled", err)
	}
	if n := len(a.received()); n != 0 {
		t.Fatalf("a cancelled push reached the authority")
	}
}

func TestDelayDuration(t *testing.T) {
	ctx := t.Context()
	a := newAuthority(3)
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.Delay, Delay: time.Millisecond}}})
	tr := faults.Wrap(full(a), inj)
	if _, err := tr.Push(ctx, ops("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.(core.Getter).Get(ctx, "todo", "t00"); err != nil {
		t.Fatal(err)
	}
	if s := inj.Stats(); s.Injected[faults.Delay] != 2 {
		t.Fatalf("stats %v", s)
	}
}

func TestReorder(t *testing.T) {
	ctx := t.Context()
	batch := ops("a", "b", "c", "d", "e", "f")
	run := func(seed uint64) []string {
		a := newAuthority(0)
		inj := newInjector(t, faults.Options{Seed: seed, Rules: []faults.Rule{{Fault: faults.Reorder}}})
		tr := faults.Wrap(full(a), inj)
		res, err := tr.Push(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		for i := range batch {
			if res[i].OpID != batch[i].OpID || res[i].Record.ID != batch[i].ID {
				t.Fatalf("result %d answers %s, want %s", i, res[i].OpID, batch[i].OpID)
			}
		}
		sent := opIDs(a.received()[0])
		if slices.Equal(sent, opIDs(batch)) {
			t.Fatalf("seed %d: the authority got the batch in its own order", seed)
		}
		if !slices.Equal(slices.Sorted(slices.Values(sent)), opIDs(batch)) {
			t.Fatalf("the authority got %v, not a permutation of the batch", sent)
		}
		// One op: nothing to reorder, nothing counted.
		if _, err := tr.Push(ctx, ops("z")); err != nil {
			t.Fatal(err)
		}
		if s := inj.Stats(); s.Injected[faults.Reorder] != 1 {
			t.Fatalf("stats %v", s)
		}
		return sent
	}
	for seed := range uint64(20) {
		if first, again := run(seed), run(seed); !slices.Equal(first, again) {
			t.Fatalf("seed %d: %v then %v", seed, first, again)
		}
	}
	if slices.Equal(run(1), run(2)) && slices.Equal(run(1), run(3)) {
		t.Fatal("the order does not depend on the seed")
	}
}

func TestPageFaults(t *testing.T) {
	ctx := t.Context()
	req := core.PullRequest{Kind: "todo", Limit: 5}
	full5 := func(a *authority) core.Page {
		p, err := a.Pull(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	pull := func(r faults.Rule) (core.Page, error, *authority, *faults.Injector) {
		a := newAuthority(12)
		inj := newInjector(t, faults.Options{Seed: 7, Rules: []faults.Rule{r}})
		p, err := faults.Wrap(full(a), inj).Pull(ctx, req)
		return p, err, a, inj
	}

	t.Run("cut", func(t *testing.T) {
		_, err, a, inj := pull(faults.Rule{Fault: faults.CutPage})
		if !errors.Is(err, core.ErrUnavailable) {
			t.Fatalf("got %v", err)
		}
		if p, _, _ := a.counts(); p != 1 || inj.Stats().Injected[faults.CutPage] != 1 {
			t.Fatalf("pulls %d, stats %v", p, inj.Stats())
		}
	})
	t.Run("truncate", func(t *testing.T) {
		p, err, a, inj := pull(faults.Rule{Fault: faults.TruncatePage, Keep: 2})
		want := full5(a)
		if err != nil || len(p.Records) != 2 || p.Records[1].ID != want.Records[1].ID ||
			p.NextPageToken != want.NextPageToken || p.NextPageToken == "" || p.Remaining != want.Remaining {
			t.Fatalf("got %+v, %v; full page %+v", p, err, want)
		}
		if inj.Stats().Injected[faults.TruncatePage] != 1 {
			t.Fatal(inj.Stats())
		}
	})
	t.Run("short", func(t *testing.T) {
		p, err, _, inj := pull(faults.Rule{Fault: faults.ShortPage, Keep: 3})
		if err != nil || len(p.Records) != 3 || p.NextPageToken != "" || p.Remaining != -1 {
			t.Fatalf("got %+v, %v", p, err)
		}
		if inj.Stats().Injected[faults.ShortPage] != 1 {
			t.Fatal(inj.Stats())
		}
	})
	t.Run("keep at least the page", func(t *testing.T) {
		p, err, _, inj := pull(faults.Rule{Fault: faults.ShortPage, Keep: 5})
		if err != nil || len(p.Records) != 5 || p.NextPageToken == "" || inj.Stats().Total() != 0 {
			t.Fatalf("got %+v, %v, %v", p, err, inj.Stats())
		}
	})
	t.Run("random keep", func(t *testing.T) {
		for seed := range uint64(30) {
			a := newAuthority(12)
			inj := newInjector(t, faults.Options{Seed: seed, Rules: []faults.Rule{{Fault: faults.TruncatePage, Keep: -1}}})
			p, err := faults.Wrap(a, inj).Pull(ctx, req)
			if err != nil || len(p.Records) >= 5 || inj.Stats().Injected[faults.TruncatePage] != 1 {
				t.Fatalf("seed %d: %d records, %v, %v", seed, len(p.Records), err, inj.Stats())
			}
		}
	})
}

func TestNoticeFaults(t *testing.T) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	notice := func(id string) core.Notice { return core.Notice{Kind: "todo", ID: id, UpdatedAt: at} }

	t.Run("gap", func(t *testing.T) {
		a := newAuthority(0)
		inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.Gap, Method: faults.Notice, Nth: 2}}})
		ctx, cancel := context.WithCancel(t.Context())
		ch, err := faults.Wrap(full(a), inj).(core.Subscriber).Subscribe(ctx, []string{"todo"})
		if err != nil {
			t.Fatal(err)
		}
		var got []core.Notice
		for _, id := range []string{"a", "b", "c"} {
			a.notices <- notice(id)
			got = append(got, <-ch)
		}
		want := []core.Notice{notice("a"), {Kind: "todo", Gap: true}, notice("c")}
		if !slices.Equal(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		cancel()
		for range ch {
		}
		<-a.subDone
		if s := inj.Stats(); s.Injected[faults.Gap] != 1 || s.Calls[faults.Notice] != 3 {
			t.Fatalf("stats %v", s)
		}
	})
	t.Run("close", func(t *testing.T) {
		a := newAuthority(0)
		inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.CloseStream, Method: faults.Notice, Nth: 2}}})
		ch, err := faults.Wrap(full(a), inj).(core.Subscriber).Subscribe(t.Context(), []string{"todo"})
		if err != nil {
			t.Fatal(err)
		}
		a.notices <- notice("a")
		if n := <-ch; n != notice("a") {
			t.Fatalf("got %+v", n)
		}
		a.notices <- notice("b")
		if n, ok := <-ch; ok {
			t.Fatalf("the stream delivered %+v after a CloseStream fault", n)
		}
		<-a.subDone // the inner subscription was cancelled
		if s := inj.Stats(); s.Injected[faults.CloseStream] != 1 {
			t.Fatalf("stats %v", s)
		}
	})
}

func TestRulesByPredicate(t *testing.T) {
	ctx := t.Context()
	a := newAuthority(0)
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{
		Fault: faults.DropAnswer,
		Match: faults.ContainsOp(func(op core.Op) bool { return op.ID == "x" }),
		Times: 2,
	}}})
	tr := faults.Wrap(full(a), inj)
	var failed []string
	for _, b := range [][]core.Op{ops("a"), ops("b", "x"), ops("c"), ops("x"), ops("x", "d")} {
		if _, err := tr.Push(ctx, b); err != nil {
			if !errors.Is(err, core.ErrUnavailable) {
				t.Fatal(err)
			}
			failed = append(failed, strings.Join(opIDs(b), "+"))
		}
	}
	if want := []string{"op-b+op-x", "op-x"}; !slices.Equal(failed, want) {
		t.Fatalf("failed %v, want %v (Times 2)", failed, want)
	}
	if len(a.received()) != 5 {
		t.Fatal("dropped answers must still reach the authority")
	}
}

// TestSeedDeterminism: the same seed and calls give the same faults; a
// different seed gives different ones.
func TestSeedDeterminism(t *testing.T) {
	rules := []faults.Rule{
		{Fault: faults.DropRequest, Method: faults.Push, Chance: 0.2},
		{Fault: faults.DropAnswer, Method: faults.Push, Chance: 0.2},
		{Fault: faults.Duplicate, Chance: 0.1},
		{Fault: faults.ShortPage, Chance: 0.3, Keep: -1},
	}
	trace := func(seed uint64) (string, faults.Stats) {
		a := newAuthority(12)
		inj := newInjector(t, faults.Options{Seed: seed, Rules: rules})
		tr := faults.Wrap(full(a), inj)
		var b strings.Builder
		for i := range 100 {
			_, err := tr.Push(t.Context(), ops(fmt.Sprint(i)))
			p, perr := tr.Pull(t.Context(), core.PullRequest{Kind: "todo", Limit: 6})
			fmt.Fprintf(&b, "%v/%v/%d ", err != nil, perr != nil, len(p.Records))
		}
		fmt.Fprintf(&b, "%d", len(a.received()))
		return b.String(), inj.Stats()
	}
	t1, s1 := trace(42)
	t2, s2 := trace(42)
	if t1 != t2 || s1.String() != s2.String() {
		t.Fatalf("same seed, different faults:\n%s\n%s", s1, s2)
	}
	for _, f := range []faults.Fault{faults.DropRequest, faults.DropAnswer, faults.Duplicate, faults.ShortPage} {
		if n := s1.Injected[f]; n == 0 || n == 100 {
			t.Fatalf("%s injected %d times in 100 calls: %v", f, n, s1)
		}
	}
	if t3, _ := trace(43); t3 == t1 {
		t.Fatal("seeds 42 and 43 gave the same faults")
	}
	t.Log(s1)
}

func TestSetEnabled(t *testing.T) {
	a := newAuthority(0)
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.DropRequest}}})
	tr := faults.Wrap(a, inj)
	inj.SetEnabled(false)
	if _, err := tr.Push(t.Context(), ops("a")); err != nil {
		t.Fatal(err)
	}
	inj.SetEnabled(true)
	if _, err := tr.Push(t.Context(), ops("b")); !errors.Is(err, core.ErrUnavailable) {
		t.Fatal(err)
	}
	s := inj.Stats()
	if s.Calls[faults.Push] != 2 || s.Injected[faults.DropRequest] != 1 {
		t.Fatalf("stats %v", s)
	}
	if got, want := s.String(), "calls: Push=2 injected: drop_request=1"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if got, want := (faults.Stats{}).String(), "calls: injected: none"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestConcurrentUse(t *testing.T) {
	a := newAuthority(12)
	inj := newInjector(t, faults.Options{Seed: 3, Rules: []faults.Rule{
		{Fault: faults.DropRequest, Chance: 0.1},
		{Fault: faults.DropAnswer, Chance: 0.1},
		{Fault: faults.Reorder, Chance: 0.5},
		{Fault: faults.Duplicate, Chance: 0.1},
	}})
	tr := faults.Wrap(full(a), inj)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				res, err := tr.Push(t.Context(), ops(fmt.Sprint(g, "-", i, "a"), fmt.Sprint(g, "-", i, "b")))
				if err == nil && (len(res) != 2 || res[0].Record.ID != fmt.Sprint(g, "-", i, "a")) {
					t.Errorf("results out of order: %+v", res)
				}
				_, _ = tr.Pull(t.Context(), core.PullRequest{Kind: "todo"})
			}
		})
	}
	wg.Wait()
	s := inj.Stats()
	if s.Calls[faults.Push] != 400 || s.Calls[faults.Pull] != 400 {
		t.Fatalf("stats %v", s)
	}
	t.Log(s)
}

func TestOptionalInterfacesPreserved(t *testing.T) {
	inj := newInjector(t, faults.Options{})
	for mask := range 8 {
		get, sub, batch := mask&1 != 0, mask&2 != 0, mask&4 != 0
		t.Run(fmt.Sprintf("get=%v,sub=%v,batch=%v", get, sub, batch), func(t *testing.T) {
			a := newAuthority(3)
			tr := faults.Wrap(withPowers(a, get, sub, batch), inj)
			_, isG := tr.(core.Getter)
			_, isS := tr.(core.Subscriber)
			_, isB := tr.(core.Batcher)
			if isG != get || isS != sub || isB != batch {
				t.Fatalf("wrapper powers get=%v sub=%v batch=%v", isG, isS, isB)
			}
			if u, ok := tr.(faults.Unwrapper); !ok || u.Unwrap() == nil {
				t.Fatal("no Unwrap")
			}
			if g, ok := tr.(core.Getter); ok {
				if r, err := g.Get(t.Context(), "todo", "t01"); err != nil || r.ID != "t01" {
					t.Fatalf("get: %v, %v", r, err)
				}
				if _, err := g.Get(t.Context(), "todo", "nope"); !errors.Is(err, core.ErrNotFound) {
					t.Fatalf("get missing: %v", err)
				}
			}
			if b, ok := tr.(core.Batcher); ok {
				if l, err := b.BatchLimits(t.Context()); err != nil || l.MaxOps != 7 {
					t.Fatalf("limits: %v, %v", l, err)
				}
			}
		})
	}
}

func TestCheckpointsAroundPush(t *testing.T) {
	var mu sync.Mutex
	var points []string
	record := func(p string) { mu.Lock(); points = append(points, p); mu.Unlock() }
	a := newAuthority(3)
	inj := newInjector(t, faults.Options{Checkpoint: record,
		Rules: []faults.Rule{{Fault: faults.DropRequest, Method: faults.Push, Nth: 2}}})
	tr := faults.Wrap(a, inj)
	_, _ = tr.Push(t.Context(), ops("a"))
	_, _ = tr.Push(t.Context(), ops("b"))
	_, _ = tr.Pull(t.Context(), core.PullRequest{Kind: "todo"})
	want := []string{faults.AfterRequestSent, faults.AfterAuthorityCommit, faults.AfterRequestSent}
	if !slices.Equal(points, want) {
		t.Fatalf("points %v, want %v", points, want)
	}
}

func TestBadRules(t *testing.T) {
	bad := map[string]faults.Rule{
		"no fault":               {},
		"unknown fault":          {Fault: 200},
		"unknown method":         {Fault: faults.DropRequest, Method: "Fetch"},
		"reorder on pull":        {Fault: faults.Reorder, Method: faults.Pull},
		"cut body on push":       {Fault: faults.CutBody, Method: faults.Push},
		"nth without method":     {Fault: faults.DropAnswer, Nth: 2},
		"negative nth":           {Fault: faults.DropAnswer, Method: faults.Push, Nth: -1},
		"chance above one":       {Fault: faults.DropAnswer, Chance: 1.5},
		"negative chance":        {Fault: faults.DropAnswer, Chance: -0.1},
		"negative times":         {Fault: faults.DropAnswer, Times: -1},
		"delay without duration": {Fault: faults.Delay},
		"negative delay":         {Fault: faults.Delay, Delay: -time.Second},
	}
	for name, r := range bad {
		if _, err := faults.New(faults.Options{Rules: []faults.Rule{r}}); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	inj := newInjector(t, faults.Options{})
	if err := inj.Add(faults.Rule{Fault: faults.DropRequest}, faults.Rule{}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("Add: %v", err)
	}
	if _, err := faults.Wrap(newAuthority(0), inj).Push(t.Context(), ops("a")); err != nil {
		t.Fatalf("a failed Add must add no rule: %v", err)
	}
	for name, f := range map[string]func(){
		"Wrap nil transport": func() { faults.Wrap(nil, inj) },
		"Wrap nil injector":  func() { faults.Wrap(newAuthority(0), nil) },
		"WrapHTTP nil":       func() { faults.WrapHTTP(nil, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", name)
				}
			}()
			f()
		}()
	}
	if got := faults.Fault(99).String(); got != "fault(99)" {
		t.Fatal(got)
	}
}
