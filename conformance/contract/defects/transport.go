package defects

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/offsync/offsync/core"
)

// Transport wraps a correct client transport with a defect. It offers the
// Get, Subscribe and BatchLimits upgrades by passing them to the wrapped
// transport, which must have them (the REST client does).
type Transport struct {
	core.Transport
	push func(ctx context.Context, ops []core.Op) ([]core.PushResult, error)
	pull func(ctx context.Context, req core.PullRequest) (core.Page, error)
}

var (
	_ core.Getter     = (*Transport)(nil)
	_ core.Subscriber = (*Transport)(nil)
	_ core.Batcher    = (*Transport)(nil)
)

// Push implements core.Transport, through the defect when it has one.
func (t *Transport) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	if t.push != nil {
		return t.push(ctx, ops)
	}
	return t.Transport.Push(ctx, ops)
}

// Pull implements core.Transport, through the defect when it has one.
func (t *Transport) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	if t.pull != nil {
		return t.pull(ctx, req)
	}
	return t.Transport.Pull(ctx, req)
}

// Get implements core.Getter.
func (t *Transport) Get(ctx context.Context, kind, id string) (core.Record, error) {
	g, ok := t.Transport.(core.Getter)
	if !ok {
		return core.Record{}, fmt.Errorf("defects: %w: %T is not a core.Getter", core.ErrInvalid, t.Transport)
	}
	return g.Get(ctx, kind, id)
}

// Subscribe implements core.Subscriber.
func (t *Transport) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	s, ok := t.Transport.(core.Subscriber)
	if !ok {
		return nil, fmt.Errorf("defects: %w: %T is not a core.Subscriber", core.ErrInvalid, t.Transport)
	}
	return s.Subscribe(ctx, kinds)
}

// BatchLimits implements core.Batcher.
func (t *Transport) BatchLimits(ctx context.Context) (core.BatchLimits, error) {
	b, ok := t.Transport.(core.Batcher)
	if !ok {
		return core.BatchLimits{}, fmt.Errorf("defects: %w: %T is not a core.Batcher", core.ErrInvalid, t.Transport)
	}
	return b.BatchLimits(ctx)
}

// FreshOpIDs sends every op under a new OpID (and answers with the
// caller's), as a client that makes up its idempotency key per attempt
// does: a re-sent op is a new request to the authority.
func FreshOpIDs(tr core.Transport) *Transport {
	var n atomic.Int64
	return &Transport{Transport: tr, push: func(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
		sent := slices.Clone(ops)
		for i := range sent {
			sent[i].OpID = fmt.Sprintf("%s~%d", sent[i].OpID, n.Add(1))
		}
		res, err := tr.Push(ctx, sent)
		for i := range res {
			if i < len(ops) {
				res[i].OpID = ops[i].OpID
			}
		}
		return res, err
	}}
}

// ReversedPages serves every page's records in reverse order.
func ReversedPages(tr core.Transport) *Transport {
	return &Transport{Transport: tr, pull: func(ctx context.Context, req core.PullRequest) (core.Page, error) {
		p, err := tr.Pull(ctx, req)
		slices.Reverse(p.Records)
		return p, err
	}}
}

// CachedConflicts keeps every conflict under its OpID and answers any later
// op with that OpID with it, so the forced retry of a conflicted op fails
// forever.
func CachedConflicts(tr core.Transport) *Transport {
	var mu sync.Mutex
	cache := map[string]core.PushResult{}
	return &Transport{Transport: tr, push: func(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
		out := make([]core.PushResult, len(ops))
		var send []core.Op
		var at []int
		mu.Lock()
		for i, op := range ops {
			if r, ok := cache[op.OpID]; ok {
				out[i] = r
				continue
			}
			send = append(send, op)
			at = append(at, i)
		}
		mu.Unlock()
		if len(send) == 0 {
			return out, nil
		}
		res, err := tr.Push(ctx, send)
		if err != nil || len(res) != len(send) {
			return res, err
		}
		mu.Lock()
		defer mu.Unlock()
		for j, r := range res {
			out[at[j]] = r
			if r.Status == core.StatusConflict {
				cache[send[j].OpID] = r
			}
		}
		return out, nil
	}}
}

// SilentSubscribe answers Subscribe with a stream that never announces
// anything and closes when ctx is done.
func SilentSubscribe(tr core.Transport) core.Transport {
	return silent{&Transport{Transport: tr}}
}

type silent struct{ *Transport }

// Subscribe implements core.Subscriber, silently.
func (silent) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	ch := make(chan core.Notice)
	go func() {
		<-ctx.Done()
		close(ch)
	}()
	return ch, nil
}
