package wire

import (
	"math/rand/v2"
	"time"
)

// Backoff paces reconnects: the n-th wait (n from 0) is a random duration in
// [d/2, d] with d = Min·2ⁿ capped at Max ("equal jitter"), so a fleet of
// replicas that lost one server does not come back in lock step.
type Backoff struct {
	Min, Max time.Duration
}

// DefaultBackoff is the reconnect pacing of the first-party clients.
var DefaultBackoff = Backoff{Min: 100 * time.Millisecond, Max: 10 * time.Second}

// Delay returns the wait before attempt n (n ≥ 0).
func (b Backoff) Delay(n int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = DefaultBackoff.Min
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}
