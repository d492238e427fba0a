package faults

import (
	"context"
	"math/rand/v2"
	"slices"

	"github.com/offsync/offsync/core"
)

// Wrap returns a core.Transport that passes every call to inner, injecting
// the faults inj chooses. The result implements core.Getter,
// core.Subscriber, core.Batcher, core.Pipeliner and core.PageStreamer
// exactly when inner does, so a caller that discovers powers by type
// assertion sees the same powers through the wrapper (faults reach every
// call but PushDepth, which is inner's). Wrap panics when inner or inj is
// nil.
func Wrap(inner core.Transport, inj *Injector) core.Transport {
	if inner == nil || inj == nil {
		panic("faults: Wrap needs a transport and an injector")
	}
	t := &transport{inner: inner, inj: inj}
	var p powers
	if g, ok := inner.(core.Getter); ok {
		p.g = getMethod{t, g}
	}
	if s, ok := inner.(core.Subscriber); ok {
		p.s = subscribeMethod{t, s}
	}
	if b, ok := inner.(core.Batcher); ok {
		p.b = batchMethod{t, b}
	}
	if pl, ok := inner.(core.Pipeliner); ok {
		p.p = pl
	}
	if s, ok := inner.(core.PageStreamer); ok {
		p.ps = streamMethod{t, s}
	}
	return withPowers[p.set()](t, p)
}

// Unwrapper is implemented by every transport Wrap returns.
type Unwrapper interface {
	Unwrap() core.Transport
}

var (
	_ core.Transport    = (*transport)(nil)
	_ Unwrapper         = (*transport)(nil)
	_ core.Getter       = getMethod{}
	_ core.Subscriber   = subscribeMethod{}
	_ core.Batcher      = batchMethod{}
	_ core.PageStreamer = streamMethod{}
)

type transport struct {
	inner core.Transport
	inj   *Injector
}

// Unwrap returns the wrapped transport.
func (t *transport) Unwrap() core.Transport { return t.inner }

// Pull implements core.Transport.
func (t *transport) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	d := t.inj.decide(&Call{Method: Pull, Kind: req.Kind, Pull: req})
	if err := t.inj.hold(ctx, d); err != nil {
		return core.Page{}, err
	}
	if d.has(DropRequest) {
		t.inj.count(DropRequest)
		return core.Page{}, dropped(DropRequest, Pull)
	}
	page, err := t.inner.Pull(ctx, req)
	if d.has(Duplicate) {
		t.inj.count(Duplicate)
		page, err = t.inner.Pull(ctx, req)
	}
	switch {
	case d.has(DropAnswer):
		t.inj.count(DropAnswer)
		return core.Page{}, dropped(DropAnswer, Pull)
	case err != nil:
		return page, err
	case d.has(CutPage):
		t.inj.count(CutPage)
		return core.Page{}, dropped(CutPage, Pull)
	case d.has(TruncatePage):
		if k := d.keep(TruncatePage, len(page.Records)); k < len(page.Records) {
			t.inj.count(TruncatePage)
			page.Records = page.Records[:k:k]
		}
	case d.has(ShortPage):
		if k := d.keep(ShortPage, len(page.Records)); k < len(page.Records) {
			t.inj.count(ShortPage)
			page.Records = page.Records[:k:k]
			page.NextPageToken = ""
			page.Remaining = -1
		}
	}
	return page, nil
}

// Push implements core.Transport.
func (t *transport) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	d := t.inj.decide(&Call{Method: Push, Ops: ops})
	if err := t.inj.hold(ctx, d); err != nil {
		return nil, err
	}
	t.inj.check(AfterRequestSent)
	if d.has(DropRequest) {
		t.inj.count(DropRequest)
		return nil, dropped(DropRequest, Push)
	}
	sent, perm := ops, []int(nil)
	if d.has(Reorder) && len(ops) > 1 {
		perm = permutation(len(ops), d[Reorder].draw)
		sent = make([]core.Op, len(ops))
		for i, p := range perm {
			sent[i] = ops[p]
		}
		t.inj.count(Reorder)
	}
	res, err := t.inner.Push(ctx, sent)
	if d.has(Duplicate) {
		t.inj.count(Duplicate)
		res, err = t.inner.Push(ctx, sent)
	}
	if err == nil {
		t.inj.check(AfterAuthorityCommit)
	}
	if d.has(DropAnswer) {
		t.inj.count(DropAnswer)
		return nil, dropped(DropAnswer, Push)
	}
	if err != nil || perm == nil || len(res) != len(ops) {
		// A short or long answer is the inner transport's contract breach:
		// pass it on unmapped for the caller to catch.
		return res, err
	}
	back := make([]core.PushResult, len(res))
	for i, p := range perm {
		back[p] = res[i]
	}
	return back, nil
}

// permutation returns a shuffle of [0, n) that differs from the identity
// (n > 1), driven by seed.
func permutation(n int, seed uint64) []int {
	rng := rand.New(rand.NewPCG(seed, ^seed))
	p := rng.Perm(n)
	if slices.IsSorted(p) {
		slices.Reverse(p)
	}
	return p
}

type getMethod struct {
	t     *transport
	inner core.Getter
}

// Get implements core.Getter.
func (g getMethod) Get(ctx context.Context, kind, id string) (core.Record, error) {
	inj := g.t.inj
	d := inj.decide(&Call{Method: Get, Kind: kind, ID: id})
	if err := inj.hold(ctx, d); err != nil {
		return core.Record{}, err
	}
	if d.has(DropRequest) {
		inj.count(DropRequest)
		return core.Record{}, dropped(DropRequest, Get)
	}
	rec, err := g.inner.Get(ctx, kind, id)
	if d.has(Duplicate) {
		inj.count(Duplicate)
		rec, err = g.inner.Get(ctx, kind, id)
	}
	if d.has(DropAnswer) {
		inj.count(DropAnswer)
		return core.Record{}, dropped(DropAnswer, Get)
	}
	return rec, err
}

type batchMethod struct {
	t     *transport
	inner core.Batcher
}

// BatchLimits implements core.Batcher.
func (b batchMethod) BatchLimits(ctx context.Context) (core.BatchLimits, error) {
	inj := b.t.inj
	d := inj.decide(&Call{Method: BatchLimits})
	if err := inj.hold(ctx, d); err != nil {
		return core.BatchLimits{}, err
	}
	if d.has(DropRequest) {
		inj.count(DropRequest)
		return core.BatchLimits{}, dropped(DropRequest, BatchLimits)
	}
	lim, err := b.inner.BatchLimits(ctx)
	if d.has(DropAnswer) {
		inj.count(DropAnswer)
		return core.BatchLimits{}, dropped(DropAnswer, BatchLimits)
	}
	return lim, err
}

type subscribeMethod struct {
	t     *transport
	inner core.Subscriber
}

// Subscribe implements core.Subscriber. Each notice the inner stream
// delivers is a Notice call: a CloseStream fault closes the stream (and ends
// the inner subscription) instead of delivering it, a Gap fault delivers
// Notice{Kind: n.Kind, Gap: true} in its place, a Delay fault holds it.
func (s subscribeMethod) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	inj := s.t.inj
	d := inj.decide(&Call{Method: Subscribe, Kinds: kinds})
	if err := inj.hold(ctx, d); err != nil {
		return nil, err
	}
	if d.has(DropRequest) {
		inj.count(DropRequest)
		return nil, dropped(DropRequest, Subscribe)
	}
	ctx, cancel := context.WithCancel(ctx)
	in, err := s.inner.Subscribe(ctx, kinds)
	if err != nil {
		cancel()
		return nil, err
	}
	out := make(chan core.Notice, cap(in))
	go func() {
		defer func() {
			close(out)
			cancel()
			for range in { // let the inner stream wind down
			}
		}()
		for {
			var n core.Notice
			var ok bool
			select {
			case n, ok = <-in:
				if !ok {
					return
				}
			case <-ctx.Done():
				return
			}
			nd := inj.decide(&Call{Method: Notice, Kind: n.Kind, ID: n.ID, Notice: n})
			if inj.hold(ctx, nd) != nil {
				return
			}
			if nd.has(CloseStream) {
				inj.count(CloseStream)
				return
			}
			if nd.has(Gap) {
				inj.count(Gap)
				n = core.Notice{Kind: n.Kind, Gap: true}
			}
			select {
			case out <- n:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
