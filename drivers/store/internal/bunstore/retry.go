package bunstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"

	"github.com/offsync/offsync/core"
)

// Retrier is an optional Dialect: a database whose write transactions can
// fail for no fault of their own — a serialization failure at REPEATABLE
// READ or SERIALIZABLE, a deadlock victim — reports such errors, and the
// store runs the transaction again (see RetryPolicy). Retryable must answer
// true only for an error after which the database has rolled the whole
// transaction back (or will, at its end): never for a lost connection,
// whose commit may have happened.
type Retrier interface {
	Retryable(err error) bool
}

// Escalator is an optional Dialect of a Retrier. A transaction that keeps
// losing to others — at SERIALIZABLE, one that waited for a kind's lock
// fails when the holder commits, so a kind written without pause can starve
// it — begins its later runs with Escalate, before any statement takes the
// transaction's snapshot: Escalate waits for the writers in progress and
// holds off new ones until the transaction ends (on Postgres a LOCK TABLE of
// offsync_versions, which takes no snapshot). It is a priority boost for a
// transaction that failed RetryPolicy.EscalateAfter times, not a lock every
// transaction takes.
type Escalator interface {
	Escalate(ctx context.Context, db bun.IDB) error
}

// RetryPolicy bounds how a write transaction is retried after a
// serialization failure: at most Attempts runs in all, waiting between two a
// random duration up to Base·2ⁿ (n the failures so far), capped at Max.
type RetryPolicy struct {
	// Attempts is the number of runs in all (0 = DefaultRetry.Attempts;
	// 1 = no retry: the failure is returned as it came).
	Attempts int
	// Base is the first backoff's upper bound (0 = DefaultRetry.Base).
	Base time.Duration
	// Max caps every backoff (0 = DefaultRetry.Max).
	Max time.Duration
	// EscalateAfter is the failures after which each rerun begins with the
	// dialect's Escalate, where it has one (0 = DefaultRetry.EscalateAfter).
	EscalateAfter int
}

// DefaultRetry is the policy of a store whose Config sets none.
var DefaultRetry = RetryPolicy{Attempts: 12, Base: 2 * time.Millisecond, Max: 250 * time.Millisecond, EscalateAfter: 3}

// ErrRetriesExhausted marks a write transaction that failed with a
// serialization failure on every attempt its RetryPolicy allowed. It is
// returned together with core.ErrUnavailable and the last failure.
var ErrRetriesExhausted = errors.New("offsync: serialization failure on every attempt")

// withDefaults fills the zero fields of p from DefaultRetry and checks it.
func (p RetryPolicy) withDefaults() (RetryPolicy, error) {
	if p.Attempts < 0 || p.Base < 0 || p.Max < 0 || p.EscalateAfter < 0 {
		return p, fmt.Errorf("%w: bunstore: negative retry policy %+v", core.ErrInvalid, p)
	}
	if p.Attempts == 0 {
		p.Attempts = DefaultRetry.Attempts
	}
	if p.Base == 0 {
		p.Base = DefaultRetry.Base
	}
	if p.Max == 0 {
		p.Max = DefaultRetry.Max
	}
	if p.EscalateAfter == 0 {
		p.EscalateAfter = DefaultRetry.EscalateAfter
	}
	return p, nil
}

// backoff is the wait after the n-th failure (n ≥ 1): full jitter over
// [0, min(Max, Base·2ⁿ⁻¹)].
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.Max
	if n-1 < 30 {
		d = min(p.Max, p.Base<<(n-1))
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// retryState is what a write transaction learns about its own retry.
type retryState struct {
	// conflict: a statement of the transaction failed with a retryable
	// error, even one fn caught (say in a savepoint) and went on from. The
	// transaction is rolled back and run again rather than committed: its
	// outcome was decided by a conflict, not by the data.
	conflict atomic.Bool
	// escaped: fn declared effects outside the database (NoRetry); the
	// transaction is never run again.
	escaped atomic.Bool
}

// NoRetry declares that the transaction's fn has had an effect the
// database cannot undo (a message sent, a file written): a serialization
// failure is then returned to the caller instead of running fn again.
func (t *Tx) NoRetry() { t.retry.escaped.Store(true) }

// Attempts reports how many times the transaction's fn has been started,
// this run included (1 on the first run).
func (t *Tx) Attempts() int { return t.attempt }

// escalate begins the attempt-th run of a write transaction with the
// dialect's Escalate once the transaction has failed EscalateAfter times.
func (s *Store) escalate(ctx context.Context, db bun.IDB, attempt int) error {
	e, ok := s.d.(Escalator)
	if !ok || attempt <= s.policy.EscalateAfter {
		return nil
	}
	s.mu.RLock()
	registered := len(s.kinds) > 0
	s.mu.RUnlock()
	if !registered {
		return nil // the first Register: the system tables may not exist yet
	}
	if err := e.Escalate(ctx, db); err != nil {
		return fmt.Errorf("offsync: %s: escalate: %w", s.d.Name(), err)
	}
	s.escalations.Add(1)
	return nil
}

// Escalations reports how many reruns began with the dialect's Escalate.
func (s *Store) Escalations() int64 { return s.escalations.Load() }

// retryable reports whether err is a failure the dialect says a rerun of
// the transaction may not meet.
func (s *Store) retryable(err error) bool {
	if err == nil || s.retrier == nil {
		return false
	}
	return s.retrier.Retryable(err)
}

// update is the one place a top-level write transaction runs: it runs
// s.run, and when the transaction failed — or saw a statement fail — with a
// serialization failure, rolls it back, waits (capped, jittered backoff)
// and runs it again, at most s.policy.Attempts times in all. It never reruns
// a transaction whose ctx is done, whose fn called NoRetry, or whose failure
// the dialect does not call retryable (a lost connection during COMMIT may
// have committed).
func (s *Store) update(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	var last error
	for attempt := 1; ; attempt++ {
		t, err := s.run(ctx, s.db, s.d.WriteTxOptions(), false, attempt, fn)
		if err == nil {
			return nil
		}
		if !s.retryable(err) && (t == nil || !t.retry.conflict.Load()) {
			return err
		}
		last = err
		if t != nil && t.retry.escaped.Load() {
			return err
		}
		if attempt >= s.policy.Attempts {
			if s.policy.Attempts == 1 {
				return err
			}
			return fmt.Errorf("offsync: %s: %w after %d attempts: %w: %w", s.d.Name(), ErrRetriesExhausted, attempt, core.ErrUnavailable, last)
		}
		wait := time.NewTimer(s.policy.backoff(attempt))
		select {
		case <-ctx.Done():
			wait.Stop()
			return errors.Join(err, ctx.Err())
		case <-wait.C:
		}
		s.retries.Add(1)
	}
}

// errConflictSeen is returned by run when fn succeeded but one of the
// transaction's statements had failed with a retryable error.
var errConflictSeen = errors.New("offsync: a statement of the transaction met a serialization failure")

// Retries reports how many times write transactions of s have been run
// again after a serialization failure since Open.
func (s *Store) Retries() int64 { return s.retries.Load() }

// noteErr marks t for a rerun when err is retryable (a statement that did
// not go through bun's query hook, or an error a savepoint returns), and
// returns err.
func (t *Tx) noteErr(err error) error {
	if err != nil && t.s.retryable(err) {
		t.retry.conflict.Store(true)
	}
	return err
}

// conflictHook marks the transaction a failed statement belongs to (found
// through the statement's ctx) when the failure is retryable.
type conflictHook struct{ s *Store }

var _ bun.QueryHook = conflictHook{}

func (conflictHook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (h conflictHook) AfterQuery(ctx context.Context, ev *bun.QueryEvent) {
	if ev.Err == nil || !h.s.retryable(ev.Err) {
		return
	}
	if t := h.s.txFrom(ctx); t != nil {
		t.retry.conflict.Store(true)
	}
}

// createVersionRows creates, at Register, the offsync_versions row of every
// kind that has none (last = 0, as a missing row reads): the per-kind lock
// (Dialect.LockVersion) then always falls on an existing row. SELECT ... FOR
// UPDATE locks no row that is not there, and a database that takes range
// locks for the missing row (or none at all) would otherwise see two
// writers both take "the lock" of a new kind, or both insert its row and
// one fail.
func createVersionRows(ctx context.Context, tx bun.IDB, infos []*kindInfo) error {
	for _, info := range infos {
		if _, err := tx.NewRaw(`INSERT INTO offsync_versions (kind, last) VALUES (?, 0) ON CONFLICT (kind) DO NOTHING`,
			info.table.Kind()).Exec(ctx); err != nil {
			return fmt.Errorf("offsync: create the version row of %q: %w", info.table.Kind(), err)
		}
	}
	return nil
}
