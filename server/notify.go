package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/offsync/offsync/core"
)

// subscriberBuffer is how many notices wait in a subscriber's channel before
// further ones are coalesced per kind.
const subscriberBuffer = 64

// subscriber receives notices through a pump goroutine: broadcast only
// records the newest notice per kind (never blocking), the pump moves them to
// the channel in arrival order.
type subscriber struct {
	ctx   context.Context
	p     core.Principal
	kinds map[string]bool // nil: every kind the principal may read
	views map[string]view // what the principal may learn of each kind (pump only once running)

	mu      sync.Mutex
	pending map[string]core.Notice
	order   []string
	wake    chan struct{}
	out     chan core.Notice

	stats *transportCounters // of the transport it came through
}

// Subscribe implements core.Subscriber. kinds names the kinds to watch (none
// means every kind the caller may read). The subscription is registered when
// Subscribe returns; the channel closes when ctx is done or the Service is
// closed. A subscriber that does not keep up never slows a push: beyond its
// buffer, notices are coalesced per kind, keeping the newest. Notices obey
// the caller's scope: a kind it may not read is never announced, and where
// its scope of a kind is filtered a notice names only the kind (no id, no
// version), since the record written may be outside it.
func (s *Service) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	sctx, end := core.StartSpan(ctx, s.opts.Tracer, core.SpanServerSubscribe,
		core.StringAttr(core.AttrTransport, TransportFrom(ctx)), core.Attr{})
	ch, err := s.subscribe(ctx, kinds)
	end(err)
	s.countCall(sctx, true, err)
	return ch, err
}

func (s *Service) subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	p, err := s.principal(ctx)
	if err != nil {
		return nil, err
	}
	sub := &subscriber{
		ctx:     ctx,
		p:       p,
		views:   map[string]view{},
		pending: map[string]core.Notice{},
		wake:    make(chan struct{}, 1),
		out:     make(chan core.Notice, subscriberBuffer),
		stats:   s.stats.transport(TransportFrom(ctx)),
	}
	if len(kinds) > 0 {
		sub.kinds = map[string]bool{}
		for _, k := range kinds {
			// A dynamic kind without rows is watched without being
			// registered: its first write announces it.
			if _, err := s.ensureKind(ctx, k, false); err != nil {
				return nil, err
			}
			f, err := s.scope(ctx, p, k)
			if err != nil {
				return nil, err
			}
			sub.kinds[k] = true
			sub.views[k] = viewOf(f)
		}
	}
	s.subMu.Lock()
	if s.closed {
		s.subMu.Unlock()
		return nil, fmt.Errorf("server: %w", core.ErrClosed)
	}
	s.subs[sub] = struct{}{}
	sub.stats.active.Add(1)
	s.wg.Add(1)
	s.subMu.Unlock()
	go s.pump(sub)
	return sub.out, nil
}

// broadcast hands n to every subscriber watching its kind; it never blocks
// on a subscriber.
func (s *Service) broadcast(n core.Notice) {
	s.subMu.RLock()
	defer s.subMu.RUnlock()
	for sub := range s.subs {
		if n.Gap || sub.kinds == nil || sub.kinds[n.Kind] {
			sub.offer(n)
		}
	}
}

func (sub *subscriber) offer(n core.Notice) {
	sub.mu.Lock()
	old, ok := sub.pending[n.Kind]
	switch {
	case !ok:
		sub.pending[n.Kind] = n
		sub.order = append(sub.order, n.Kind)
	case n.Gap || !(core.Cursor{UpdatedAt: n.UpdatedAt, ID: n.ID}).Before(old.UpdatedAt, old.ID):
		n.Gap = n.Gap || old.Gap
		sub.pending[n.Kind] = n
	}
	sub.mu.Unlock()
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

func (sub *subscriber) next() (core.Notice, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if len(sub.order) == 0 {
		return core.Notice{}, false
	}
	k := sub.order[0]
	sub.order = sub.order[1:]
	n := sub.pending[k]
	delete(sub.pending, k)
	return n, true
}

func (s *Service) pump(sub *subscriber) {
	defer s.wg.Done()
	defer close(sub.out)
	defer func() {
		s.subMu.Lock()
		delete(s.subs, sub)
		s.subMu.Unlock()
		sub.stats.active.Add(-1)
	}()
	for {
		n, ok := sub.next()
		if !ok {
			select {
			case <-sub.wake:
				continue
			case <-sub.ctx.Done():
				return
			case <-s.ctx.Done():
				return
			}
		}
		n, ok = s.visible(sub, n)
		if !ok {
			continue
		}
		select {
		case sub.out <- n:
			sub.stats.notices.Add(1)
		case <-sub.ctx.Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// view is what a subscriber may learn from the notices of a kind.
type view uint8

const (
	viewNone     view = iota // nothing: the kind is not readable to it
	viewKindOnly             // that the kind changed, not which record
	viewFull                 // the notice as it is
)

// viewOf is the view a scope filter gives. A notice names the last record
// written, which a filtered subscriber may not be allowed to see (nor its
// version): such a subscriber learns only that the kind changed, and pulls
// it (the engine pulls on a notice without a position), its pull showing
// only what it may read.
func viewOf(f *core.Filter) view {
	switch {
	case f == nil:
		return viewFull
	case len(f.Values) == 0:
		return viewNone
	}
	return viewKindOnly
}

// visible applies the subscriber's scope to n: the notice to send, or false
// to send nothing. Every stream transport shares it through Subscribe.
func (s *Service) visible(sub *subscriber, n core.Notice) (core.Notice, bool) {
	if n.Gap || n.Kind == "" {
		return n, true
	}
	v, seen := sub.views[n.Kind]
	if !seen {
		f, err := s.scope(sub.ctx, sub.p, n.Kind)
		v = viewNone
		if err == nil {
			v = viewOf(f)
		}
		sub.views[n.Kind] = v
	}
	switch v {
	case viewFull:
		return n, true
	case viewKindOnly:
		return core.Notice{Kind: n.Kind}, true
	}
	return core.Notice{}, false
}

// listen feeds subscribers from the store's notices (several Services on one
// database all hear every commit). When the stream breaks, subscribers get a
// gap notice and the stream is opened again.
func (s *Service) listen(ch <-chan core.Notice) {
	defer s.wg.Done()
	backoff := 100 * time.Millisecond
	for {
		for n := range ch {
			backoff = 100 * time.Millisecond
			n.Gap = false
			s.broadcast(n)
		}
		if s.ctx.Err() != nil {
			return
		}
		for {
			t := s.clock.NewTimer(backoff)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
			backoff = min(2*backoff, 10*time.Second)
			var err error
			if ch, err = s.notifier.Listen(s.ctx); err == nil {
				break
			}
			s.log.Warn("offsync server: listen for change notices", "err", err)
		}
		s.broadcast(core.Notice{Gap: true})
	}
}
