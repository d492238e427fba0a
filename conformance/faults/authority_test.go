package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/offsync/offsync/core"
)

// authority is a tiny in-memory authority used to test the wrappers: it
// records every batch it receives, applies upserts with increasing versions,
// serves a fixed feed in pages, and streams notices sent on its notices
// channel.
type authority struct {
	mu      sync.Mutex
	batches [][]core.Op // every Push, in arrival order
	pulls   int
	gets    int
	limits  int
	version time.Time
	feed    []core.Record
	subDone chan struct{} // closed when a subscription's ctx ends
	notices chan core.Notice
}

func newAuthority(records int) *authority {
	a := &authority{
		version: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		notices: make(chan core.Notice),
		subDone: make(chan struct{}),
	}
	for i := range records {
		a.feed = append(a.feed, core.Record{
			Kind: "todo", ID: fmt.Sprintf("t%02d", i),
			UpdatedAt: a.version.Add(time.Duration(i) * time.Microsecond),
			Data:      json.RawMessage(`{}`),
		})
	}
	return a
}

func (a *authority) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pulls++
	start := 0
	if req.PageToken != "" {
		if _, err := fmt.Sscanf(req.PageToken, "p%d", &start); err != nil {
			return core.Page{}, fmt.Errorf("token %q: %w", req.PageToken, core.ErrBadCursor)
		}
	}
	limit := req.Limit
	if limit == 0 {
		limit = 4
	}
	end := min(start+limit, len(a.feed))
	page := core.Page{Records: slices.Clone(a.feed[start:end]), Remaining: int64(len(a.feed) - end)}
	if end < len(a.feed) {
		page.NextPageToken = fmt.Sprintf("p%d", end)
	}
	return page, nil
}

func (a *authority) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.batches = append(a.batches, slices.Clone(ops))
	res := make([]core.PushResult, len(ops))
	for i, op := range ops {
		a.version = a.version.Add(time.Microsecond)
		res[i] = core.PushResult{OpID: op.OpID, Status: core.StatusApplied,
			Record: &core.Record{Kind: op.Kind, ID: op.ID, UpdatedAt: a.version, Data: op.Payload}}
	}
	return res, nil
}

func (a *authority) get(ctx context.Context, kind, id string) (core.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gets++
	for _, r := range a.feed {
		if r.Kind == kind && r.ID == id {
			return r, nil
		}
	}
	return core.Record{}, fmt.Errorf("%s/%s: %w", kind, id, core.ErrNotFound)
}

func (a *authority) subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	out := make(chan core.Notice)
	go func() {
		defer close(a.subDone)
		defer close(out)
		for {
			select {
			case n := <-a.notices:
				select {
				case out <- n:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (a *authority) batchLimits(ctx context.Context) (core.BatchLimits, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.limits++
	return core.BatchLimits{MaxOps: 7}, nil
}

func (a *authority) received() [][]core.Op {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.batches)
}

func (a *authority) counts() (pulls, gets, limits int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pulls, a.gets, a.limits
}

// The optional powers, each on its own type, so that a test can build an
// authority with any combination of them.
type (
	getPower   struct{ a *authority }
	subPower   struct{ a *authority }
	batchPower struct{ a *authority }
)

func (p getPower) Get(ctx context.Context, kind, id string) (core.Record, error) {
	return p.a.get(ctx, kind, id)
}

func (p subPower) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	return p.a.subscribe(ctx, kinds)
}

func (p batchPower) BatchLimits(ctx context.Context) (core.BatchLimits, error) {
	return p.a.batchLimits(ctx)
}

// withPowers returns a transport over a with exactly the optional powers
// asked for.
func withPowers(a *authority, get, sub, batch bool) core.Transport {
	g, s, b := getPower{a}, subPower{a}, batchPower{a}
	switch {
	case get && sub && batch:
		return struct {
			*authority
			getPower
			subPower
			batchPower
		}{a, g, s, b}
	case get && sub:
		return struct {
			*authority
			getPower
			subPower
		}{a, g, s}
	case get && batch:
		return struct {
			*authority
			getPower
			batchPower
		}{a, g, b}
	case sub && batch:
		return struct {
			*authority
			subPower
			batchPower
		}{a, s, b}
	case get:
		return struct {
			*authority
			getPower
		}{a, g}
	case sub:
		return struct {
			*authority
			subPower
		}{a, s}
	case batch:
		return struct {
			*authority
			batchPower
		}{a, b}
	default:
		return a
	}
}

// full returns a with every optional power.
func full(a *authority) core.Transport { return withPowers(a, true, true, true) }

func ops(ids ...string) []core.Op {
	out := make([]core.Op, len(ids))
	for i, id := range ids {
		out[i] = core.Op{OpID: "op-" + id, Kind: "todo", ID: id, Type: core.OpUpsert,
			Payload: json.RawMessage(`{"title":"` + id + `"}`)}
	}
	return out
}

func opIDs(ops []core.Op) []string {
	ids := make([]string, len(ops))
	for i, op := range ops {
		ids[i] = op.OpID
	}
	return ids
}
