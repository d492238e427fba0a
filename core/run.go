package core

import (
	"context"
	"errors"
	"time"
)

// RunOption configures the coordinator.
type RunOption func(*runConfig)

type runConfig struct {
	interval    time.Duration
	pullOnStart bool
	pushOnWrite bool
	debounce    time.Duration
	realtime    bool
}

// Every syncs everything at the given interval.
func Every(d time.Duration) RunOption { return func(c *runConfig) { c.interval = d } }

// PullOnStart syncs everything once when Run starts.
func PullOnStart() RunOption { return func(c *runConfig) { c.pullOnStart = true } }

// PushOnWrite pushes soon after local writes, waiting debounce (default
// 200ms) after a write for more to come.
func PushOnWrite(debounce ...time.Duration) RunOption {
	return func(c *runConfig) {
		c.pushOnWrite = true
		c.debounce = 200 * time.Millisecond
		if len(debounce) > 0 {
			c.debounce = debounce[0]
		}
	}
}

// Realtime pulls a kind when the authority announces changes the replica
// has not applied, when the transport is a Subscriber. After a gap in the
// stream every kind is pulled; a lost stream is re-established with backoff
// while the interval, if any, keeps syncing.
func Realtime() RunOption { return func(c *runConfig) { c.realtime = true } }

// Run coordinates syncs until ctx is done: on an interval, on start, after
// local writes, and on the authority's change notices. A failed sync is
// retried with backoff. Run returns ctx's error, or ErrClosed.
func (e *Engine) Run(ctx context.Context, opts ...RunOption) error {
	var cfg runConfig
	for _, o := range opts {
		o(&cfg)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clock := e.opts.Clock

	var notices <-chan Notice
	var resub Timer
	resubAttempt := 0
	subscribe := func() {
		if !cfg.realtime {
			return
		}
		s, ok := e.tr.(Subscriber)
		if !ok {
			return
		}
		ch, err := s.Subscribe(ctx, e.order)
		if err != nil {
			if errors.Is(err, errors.ErrUnsupported) {
				return // this authority cannot stream: the timer carries on
			}
			resubAttempt++
			e.emit(SyncError{At: e.at(), Err: err, Category: Categorize(err), WillRetry: true})
			resub = clock.NewTimer(e.backoff(resubAttempt))
			return
		}
		resubAttempt = 0
		notices = ch
	}
	subscribe()

	var tick, debounce, retry Timer
	defer func() {
		for _, t := range []Timer{tick, debounce, retry, resub} {
			if t != nil {
				t.Stop()
			}
		}
	}()
	if cfg.interval > 0 {
		tick = clock.NewTimer(cfg.interval)
	}
	failures := 0
	sync := func(opts ...SyncOption) {
		_, err := e.Sync(ctx, opts...)
		if err != nil && ctx.Err() == nil {
			failures++
			if retry != nil {
				retry.Stop()
			}
			retry = clock.NewTimer(e.backoff(failures))
			return
		}
		failures = 0
	}
	if cfg.pullOnStart || notices != nil {
		// With a stream, pull once so nothing committed before it is missed.
		sync()
	}
	for {
		var tickC, debounceC, retryC, resubC <-chan time.Time
		var wroteC <-chan struct{}
		if tick != nil {
			tickC = tick.C()
		}
		if debounce != nil {
			debounceC = debounce.C()
		}
		if retry != nil {
			retryC = retry.C()
		}
		if resub != nil {
			resubC = resub.C()
		}
		if cfg.pushOnWrite {
			wroteC = e.wrote
		}
		select {
		case <-e.done:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		case <-tickC:
			tick = clock.NewTimer(cfg.interval)
			sync()
		case <-wroteC:
			if debounce != nil {
				debounce.Stop()
			}
			debounce = clock.NewTimer(cfg.debounce)
		case <-debounceC:
			debounce = nil
			sync(PullKinds())
		case <-retryC:
			retry = nil
			sync()
		case <-resubC:
			resub = nil
			subscribe()
			if notices != nil {
				sync(PushKinds()) // the stream was down: catch up
			}
		case n, ok := <-notices:
			if !ok {
				notices = nil
				resubAttempt++
				resub = clock.NewTimer(e.backoff(resubAttempt))
				continue
			}
			if n.Gap {
				sync(PushKinds())
				continue
			}
			if _, known := e.tables[n.Kind]; !known {
				continue
			}
			// A notice without a position (an authority names only the kind
			// to a subscriber whose scope is filtered) always pulls.
			if c, err := e.Cursor(ctx, n.Kind); err == nil && !n.UpdatedAt.IsZero() && !c.Before(n.UpdatedAt, n.ID) {
				continue // already applied
			}
			sync(PushKinds(), PullKinds(n.Kind))
		}
	}
}
