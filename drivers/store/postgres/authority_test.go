package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/internal/bunstore"
	"github.com/offsync/offsync/drivers/store/postgres"
	"github.com/offsync/offsync/internal/pgtest"
	"github.com/offsync/offsync/server"
)

// The bun stores' transactions lock a batch's kinds up front for the server.
var _ server.KindLocker = (*bunstore.Tx)(nil)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC)

// tickClock is a clock shared by several Services: every Now is one
// microsecond after the previous, whichever instance asks, so versions
// stamped from it are distinct and follow the order they were taken in.
type tickClock struct{ n atomic.Int64 }

func (c *tickClock) Now() time.Time { return t0.Add(time.Duration(c.n.Add(1)) * time.Microsecond) }
func (c *tickClock) NewTimer(d time.Duration) core.Timer {
	return core.SystemClock.NewTimer(d)
}

var tokenSecret = []byte("offsync postgres tests: shared page token secret")

// newInstance opens a store of its own on dsn and a Service over it: one
// authority instance among several sharing the database.
func newInstance(t *testing.T, dsn string, opts server.Options) *server.Service {
	t.Helper()
	return newInstanceOpts(t, dsn, nil, opts)
}

// newInstanceOpts is newInstance over a store opened with popts.
func newInstanceOpts(t *testing.T, dsn string, popts *postgres.Options, opts server.Options) *server.Service {
	t.Helper()
	st, err := postgres.Open(t.Context(), dsn, popts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	opts.TokenSecret = tokenSecret
	svc, err := server.New(t.Context(), st, &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() }) // runs before the store's Close
	return svc
}

func docOp(kind, id string, payload string) core.Op {
	return core.Op{OpID: kind + "/" + id, Kind: kind, ID: id, Type: core.OpUpsert, Payload: []byte(payload)}
}

// lockWaiters counts the backends of db's database waiting on a lock.
func lockWaiters(ctx context.Context, db *bun.DB) (int, error) {
	var n int
	err := db.NewRaw(`SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(ctx, &n)
	return n, err
}

// TestLockKindsSurviveASavepointRollback: kinds locked at the top of the
// transaction stay locked after a savepoint that wrote their version rolls
// back, so a batch keeps its locks whatever its ops do.
func TestLockKindsSurviveASavepointRollback(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.New(t), core.Documents("a"), core.Documents("b"))
	ctx := t.Context()
	held := make(chan struct{})
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			if err := tx.(server.KindLocker).LockKinds(ctx, []string{"b", "a", "b"}); err != nil {
				return err
			}
			err := tx.Savepoint(ctx, func(ctx context.Context) error {
				if _, err := tx.NextVersion(ctx, "a", time.Now()); err != nil {
					return err
				}
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				return fmt.Errorf("savepoint: %v, want the rollback", err)
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	second := make(chan error, 1)
	go func() {
		second <- s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			_, err := tx.NextVersion(ctx, "a", time.Now())
			return err
		})
	}()
	waitForLockWaiter(t, s, second)
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
}

func TestLockKindsRefusesAnUnknownKindAndAReadTransaction(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.New(t), core.Documents("a"))
	ctx := t.Context()
	err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		return tx.(server.KindLocker).LockKinds(ctx, []string{"a", "nope"})
	})
	if !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("unknown kind: %v, want ErrUnknownKind", err)
	}
	err = s.View(ctx, func(ctx context.Context, tx core.Tx) error {
		return tx.(server.KindLocker).LockKinds(ctx, []string{"a"})
	})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("in a View: %v, want ErrInvalid", err)
	}
}

// TestOppositeKindOrdersDoNotDeadlock: two authority instances push batches
// touching kinds a and b in opposite orders. In the first rounds each
// batch, once it stamped its first op, waits until the other batch has
// stamped too or waits on a lock: with locks taken lazily per kind that
// drives the two into a deadlock every round (Postgres aborts one), with
// the kinds locked up front in sorted order the second batch waits on its
// first lock and both commit. Then the two push freely, unhooked.
func TestOppositeKindOrdersDoNotDeadlock(t *testing.T) {
	t.Parallel()
	dsn := pgtest.New(t)
	ctx := t.Context()
	probe := open(t, dsn)
	var (
		mu      sync.Mutex
		stamped = map[string]bool{} // batch ("x-3", "y-3") -> stamped its first op
		hooked  atomic.Bool
		hookErr = make(chan error, 1)
	)
	other := func(batch string) string {
		if strings.HasPrefix(batch, "x") {
			return "y" + batch[1:]
		}
		return "x" + batch[1:]
	}
	hook := func(ctx context.Context, kind, id string, v time.Time, locked bool) {
		if !hooked.Load() {
			return
		}
		mu.Lock()
		if stamped[id] { // the batch's second op
			mu.Unlock()
			return
		}
		stamped[id] = true
		mu.Unlock()
		for {
			mu.Lock()
			done := stamped[other(id)]
			mu.Unlock()
			if done {
				return
			}
			n, err := lockWaiters(ctx, probe.DB())
			if err != nil {
				select {
				case hookErr <- err:
				default:
				}
				return
			}
			if n > 0 {
				return
			}
			time.Sleep(2 * time.Millisecond) // polls the database; not a timing assumption
		}
	}
	opts := server.Options{Tables: []core.Table{core.Documents("a"), core.Documents("b"), core.Documents("c")},
		Hooks: &server.Hooks{AfterStamp: hook}}
	x, y := newInstance(t, dsn, opts), newInstance(t, dsn, opts)

	pushBoth := func(round int, xKinds, yKinds []string) error {
		batch := func(prefix string, kinds []string) []core.Op {
			id := fmt.Sprintf("%s-%d", prefix, round)
			ops := make([]core.Op, len(kinds))
			for i, k := range kinds {
				ops[i] = docOp(k, id, `{"n":1}`)
			}
			return ops
		}
		errs := make(chan error, 2)
		for _, p := range []struct {
			svc   *server.Service
			ops   []core.Op
			label string
		}{{x, batch("x", xKinds), "x"}, {y, batch("y", yKinds), "y"}} {
			go func() {
				res, err := p.svc.Push(ctx, p.ops)
				if err == nil {
					for _, r := range res {
						if r.Status != core.StatusApplied {
							err = fmt.Errorf("op %s: %v %s", r.OpID, r.Status, r.Reason)
						}
					}
				}
				if err != nil {
					err = fmt.Errorf("round %d, batch %s: %w", round, p.label, err)
				}
				errs <- err
			}()
		}
		return errors.Join(<-errs, <-errs)
	}

	hooked.Store(true)
	const hookedRounds = 5
	for round := range hookedRounds {
		if err := pushBoth(round, []string{"a", "b"}, []string{"b", "a"}); err != nil {
			t.Fatal(err)
		}
	}
	hooked.Store(false)
	select {
	case err := <-hookErr:
		t.Fatal(err)
	default:
	}
	// Free-running: three kinds, every batch in an order of its own.
	orders := [][]string{{"a", "b", "c"}, {"c", "b", "a"}, {"b", "c", "a"}, {"a", "c", "b"}}
	const freeRounds = 40
	for round := range freeRounds {
		if err := pushBoth(hookedRounds+round, orders[round%4], orders[(round+1)%4]); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := probe.DB().NewRaw("SELECT count(*) FROM offsync_documents").Scan(ctx, &n); err != nil {
		t.Fatal(err)
	}
	if want := 2*2*hookedRounds + 2*3*freeRounds; n != want {
		t.Fatalf("%d rows written, want %d", n, want)
	}
}

// TestVersionsStampedInAReleasedSavepointPersist: a transaction keeps the
// last version of each kind and records it when it commits. A version
// stamped in a savepoint that was released is recorded even after a later
// savepoint rolls back; one stamped in a rolled-back savepoint is not needed.
func TestVersionsStampedInAReleasedSavepointPersist(t *testing.T) {
	t.Parallel()
	s := open(t, pgtest.New(t), core.Documents("a"), core.Documents("b"))
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // fixed: versions come from last+1µs
	stamp := func(tx core.Tx, kind string) (time.Time, error) { return tx.NextVersion(ctx, kind, now) }
	var va time.Time
	err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		if err := tx.Savepoint(ctx, func(ctx context.Context) (err error) {
			va, err = stamp(tx, "a")
			return err
		}); err != nil {
			return err
		}
		err := tx.Savepoint(ctx, func(ctx context.Context) error {
			if _, err := stamp(tx, "a"); err != nil {
				return err
			}
			if _, err := stamp(tx, "b"); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			return fmt.Errorf("savepoint: %v, want the rollback", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !va.Equal(now) {
		t.Fatalf("first version %v, want %v", va, now)
	}
	err = s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		next, err := stamp(tx, "a")
		if err != nil {
			return err
		}
		if !next.After(va) {
			return fmt.Errorf("next version of a %v, not after the committed %v", next, va)
		}
		vb, err := stamp(tx, "b")
		if err != nil {
			return err
		}
		if !vb.Equal(now) {
			return fmt.Errorf("b: %v, want %v (its only stamp was rolled back)", vb, now)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
