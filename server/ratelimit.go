package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/offsync/offsync/core"
)

// RateLimit is a per-principal token bucket: each principal may make
// PerSecond requests a second on average and Burst at once.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// RateLimitError is the refusal of a rate-limited request. It matches
// core.ErrRateLimited (and so core.ErrUnavailable: retry later); After is
// when the next request of the principal would be admitted. Each wire form
// sends After as its retry hint (REST: Retry-After).
type RateLimitError struct {
	After time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%v; retry in %v", core.ErrRateLimited, e.After.Round(time.Millisecond))
}

// Unwrap makes the error match core.ErrRateLimited and core.ErrUnavailable.
func (e *RateLimitError) Unwrap() error { return core.ErrRateLimited }

// RetryAfter returns the wait a refusal carries: a RateLimitError's After,
// else 0 (the wire form's own default applies).
func RetryAfter(err error) time.Duration {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl.After
	}
	return 0
}

// RateLimiter holds a token bucket per principal ID. It is safe for
// concurrent use. Buckets that have filled up again are forgotten, so its
// size follows the principals active in the last Burst/PerSecond seconds.
type RateLimiter struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewRateLimiter returns a limiter of l; now is its clock (time.Now when
// nil). PerSecond and Burst must be positive.
func NewRateLimiter(l RateLimit, now func() time.Time) (*RateLimiter, error) {
	if !(l.PerSecond > 0) || math.IsInf(l.PerSecond, 0) || l.Burst < 1 {
		return nil, fmt.Errorf("server: rate limit: %w: per_second and burst must be positive", core.ErrInvalid)
	}
	if now == nil {
		now = time.Now
	}
	return &RateLimiter{rate: l.PerSecond, burst: float64(l.Burst), now: now, buckets: map[string]*bucket{}}, nil
}

// Admit takes one token of id's bucket: nil when there was one, else a
// *RateLimitError saying when there will be.
func (r *RateLimiter) Admit(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	r.sweep(now)
	b, ok := r.buckets[id]
	if !ok {
		b = &bucket{tokens: r.burst, at: now}
		r.buckets[id] = b
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(r.burst, b.tokens+d.Seconds()*r.rate)
	}
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return nil
	}
	wait := time.Duration((1 - b.tokens) / r.rate * float64(time.Second))
	return &RateLimitError{After: max(wait, time.Millisecond)}
}

// sweep forgets buckets that are full again, at most once per refill time.
func (r *RateLimiter) sweep(now time.Time) {
	refill := time.Duration(r.burst / r.rate * float64(time.Second))
	if now.Sub(r.swept) < refill {
		return
	}
	r.swept = now
	for id, b := range r.buckets {
		if now.Sub(b.at) >= refill {
			delete(r.buckets, id)
		}
	}
}

// RateLimited returns an authenticate function (Options.Authenticate)
// that authenticates with auth (nil: every caller is the anonymous
// principal) and then takes one token of the principal's bucket. Every
// server half authenticates each request (a REST request, a WebSocket
// frame, a gRPC call, a GraphQL operation, the opening of a stream), so
// this is the one place where the rate limit applies to every wire form.
// A refused token is not counted.
func RateLimited(auth func(ctx context.Context, token string) (core.Principal, error), r *RateLimiter) func(ctx context.Context, token string) (core.Principal, error) {
	return func(ctx context.Context, token string) (core.Principal, error) {
		var p core.Principal
		if auth != nil {
			var err error
			if p, err = auth(ctx, token); err != nil {
				return core.Principal{}, err
			}
		}
		if err := r.Admit(p.ID); err != nil {
			return core.Principal{}, fmt.Errorf("server: principal %q: %w", p.ID, err)
		}
		return p, nil
	}
}
