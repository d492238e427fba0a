package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/offsync/offsync/conformance/storetest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/internal/bunstore"
	"github.com/offsync/offsync/drivers/store/postgres"
	"github.com/offsync/offsync/internal/pgtest"
)

// serializableDSN is dsn with every transaction of its sessions at
// SERIALIZABLE (a run-time parameter of the connection), the isolation a
// Postgres-compatible distributed SQL engine runs at.
func serializableDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		q.Set("default_transaction_isolation", "serializable")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " default_transaction_isolation=serializable" // keyword/value form
}

// openSerializable opens a store whose write transactions run at
// SERIALIZABLE, registered with tables, and checks that they do.
func openSerializable(t *testing.T, dsn string, opts *postgres.Options, tables ...core.Table) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), serializableDSN(dsn), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err := s.Register(t.Context(), tables...); err != nil {
		t.Fatal(err)
	}
	var level string
	if err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		return bunstore.Bun(tx).NewRaw("SHOW transaction_isolation").Scan(ctx, &level)
	}); err != nil {
		t.Fatal(err)
	}
	if level != "serializable" {
		t.Fatalf("write transactions run at %q, want serializable", level)
	}
	return s
}

// serializableHarness gives every conformance test a store whose write
// transactions all run at SERIALIZABLE.
type serializableHarness struct{}

func (serializableHarness) NewStore(t *testing.T) core.Store {
	return openSerializable(t, pgtest.New(t), nil)
}

// TestConformanceSerializable runs the store suite, the authority's part
// included (versions, idempotency, batches, tombstone collection while
// pushing), with every write transaction at SERIALIZABLE. Without the
// retry, CollectWhilePushing fails on a serialization failure.
func TestConformanceSerializable(t *testing.T) { storetest.Run(t, serializableHarness{}) }

// TestNextVersionUnderConcurrentTransactionsSerializable: eight writers
// stamping versions of one kind at SERIALIZABLE conflict on its version row
// all the time; every transaction ends applied once, versions strictly
// increase in commit order.
func TestNextVersionUnderConcurrentTransactionsSerializable(t *testing.T) {
	s := openSerializable(t, pgtest.New(t), nil, core.Documents("todo"))
	rows := concurrentVersions(t, s, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	t.Logf("%d transactions, %d reruns after a serialization failure", len(rows), s.Retries())
}

// conflict runs, in a transaction of its own on other, a write of kind's
// version row, committed while the caller's transaction (whose snapshot is
// taken) is still open: the caller's next lock of kind then meets a
// serialization failure ("could not serialize access due to concurrent
// update").
func conflict(t *testing.T, ctx context.Context, other *postgres.Store, kind string) {
	t.Helper()
	err := other.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		_, err := tx.NextVersion(ctx, kind, time.Now())
		return err
	})
	if err != nil {
		t.Errorf("conflicting write: %v", err)
	}
}

// forcedConflict runs one Update on s whose first run is made to conflict
// with a write of other; it returns Update's error, how many times fn ran,
// and whether the row fn writes is there.
func forcedConflict(t *testing.T, s, other *postgres.Store, nested bool) (err error, runs int, kept bool) {
	ctx := t.Context()
	err = s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		runs++
		// The first statement takes the transaction's snapshot.
		if _, err := bunstore.Bun(tx).ExecContext(ctx, "SELECT 1"); err != nil {
			return err
		}
		if runs == 1 {
			conflict(t, ctx, other, "todo") // (ctx carries s's transaction, not other's)
		}
		stamp := func(ctx context.Context, tx core.Tx) error {
			v, err := tx.NextVersion(ctx, "todo", time.Now())
			if err != nil {
				return err
			}
			return tx.Put(ctx, core.Record{Kind: "todo", ID: "mine", UpdatedAt: v, Data: []byte(`{"n":1}`)})
		}
		if nested {
			// A caller that swallows the failure inside a savepoint and
			// goes on must not commit what it decided under the conflict.
			if err := s.Update(ctx, stamp); err != nil {
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "40001" {
					t.Errorf("nested Update: %v, want a serialization failure", err)
				}
			}
			return nil
		}
		return stamp(ctx, tx)
	})
	verr := s.View(ctx, func(ctx context.Context, tx core.Tx) error {
		_, err := tx.Get(ctx, "todo", "mine")
		kept = err == nil
		if errors.Is(err, core.ErrNotFound) {
			return nil
		}
		return err
	})
	if verr != nil {
		t.Fatal(verr)
	}
	return err, runs, kept
}

// TestSerializationFailureIsRetried forces a serialization failure: the
// transaction's snapshot is taken, another transaction then commits a write
// of the kind's version row, and the first one's lock of that row fails
// with SQLSTATE 40001. The store runs it again, and the second run commits.
// The negative control (retry_attempts 1) gets the 40001 and writes nothing.
func TestSerializationFailureIsRetried(t *testing.T) {
	for _, nested := range []bool{false, true} {
		name := "ReturnedByFn"
		if nested {
			name = "SwallowedInASavepoint"
		}
		t.Run(name, func(t *testing.T) {
			dsn := pgtest.New(t)
			s := openSerializable(t, dsn, nil, core.Documents("todo"))
			other := openSerializable(t, dsn, nil, core.Documents("todo"))
			err, runs, kept := forcedConflict(t, s, other, nested)
			if err != nil {
				t.Fatalf("Update: %v, want the retry to succeed", err)
			}
			if runs != 2 || !kept || s.Retries() != 1 {
				t.Fatalf("fn ran %d times, row kept %v, %d retries; want 2, true, 1", runs, kept, s.Retries())
			}
		})
		t.Run(name+"/NegativeControl", func(t *testing.T) {
			dsn := pgtest.New(t)
			s := openSerializable(t, dsn, &postgres.Options{RetryAttempts: 1}, core.Documents("todo"))
			other := openSerializable(t, dsn, nil, core.Documents("todo"))
			err, runs, kept := forcedConflict(t, s, other, nested)
			if err == nil || runs != 1 || kept {
				t.Fatalf("without retry: Update returned %v after %d runs, row kept %v; want the failure, 1 run, nothing written", err, runs, kept)
			}
			var pe *pgconn.PgError
			if !nested && (!errors.As(err, &pe) || pe.Code != "40001") {
				t.Fatalf("without retry: %v, want SQLSTATE 40001", err)
			}
		})
	}
}

// TestRetriesAreBounded: a transaction that conflicts on every run is given
// up after RetryAttempts runs, with core.ErrUnavailable.
func TestRetriesAreBounded(t *testing.T) {
	dsn := pgtest.New(t)
	s := openSerializable(t, dsn, &postgres.Options{RetryAttempts: 3}, core.Documents("todo"))
	other := openSerializable(t, dsn, nil, core.Documents("todo"))
	runs := 0
	err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		runs++
		if _, err := bunstore.Bun(tx).ExecContext(ctx, "SELECT 1"); err != nil {
			return err
		}
		conflict(t, ctx, other, "todo")
		_, err := tx.NextVersion(ctx, "todo", time.Now())
		return err
	})
	if !errors.Is(err, core.ErrUnavailable) || !errors.Is(err, bunstore.ErrRetriesExhausted) || runs != 3 {
		t.Fatalf("Update: %v after %d runs, want ErrUnavailable after 3", err, runs)
	}
}

// TestNoRetryAfterEscapedEffects: fn that declared an effect outside the
// database (NoRetry) is not run again; the failure is returned.
func TestNoRetryAfterEscapedEffects(t *testing.T) {
	dsn := pgtest.New(t)
	s := openSerializable(t, dsn, nil, core.Documents("todo"))
	other := openSerializable(t, dsn, nil, core.Documents("todo"))
	runs := 0
	err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		runs++
		tx.(*bunstore.Tx).NoRetry()
		if _, err := bunstore.Bun(tx).ExecContext(ctx, "SELECT 1"); err != nil {
			return err
		}
		conflict(t, ctx, other, "todo")
		_, err := tx.NextVersion(ctx, "todo", time.Now())
		return err
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "40001" || runs != 1 {
		t.Fatalf("Update: %v after %d runs, want the 40001 after 1", err, runs)
	}
}

// TestVersionRowsCreatedAtRegister: Register creates each kind's version
// row, so the per-kind lock (SELECT ... FOR UPDATE) never meets a missing
// row.
func TestVersionRowsCreatedAtRegister(t *testing.T) {
	s := open(t, pgtest.New(t), core.Documents("todo"), core.Documents("other"))
	var kinds []string
	if err := s.DB().NewRaw("SELECT kind FROM offsync_versions WHERE last = 0 ORDER BY kind").Scan(t.Context(), &kinds); err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 2 || kinds[0] != "other" || kinds[1] != "todo" {
		t.Fatalf("version rows %v, want [other todo] created by Register", kinds)
	}
}

// TestSerializationFailureOnAHookLessStatementIsRetried: the idempotency
// records are written through database/sql directly (bound parameters,
// outside bun's query hook). A serialization failure there — another
// transaction committed the same op's record after this one's snapshot —
// caught by the caller in a savepoint, as the server's op-by-op push does
// when it answers the op "retry", still reruns the whole transaction.
func TestSerializationFailureOnAHookLessStatementIsRetried(t *testing.T) {
	for _, attempts := range []int{0, 1} {
		t.Run(fmt.Sprintf("retry_attempts=%d", attempts), func(t *testing.T) {
			dsn := pgtest.New(t)
			s := openSerializable(t, dsn, &postgres.Options{RetryAttempts: attempts}, core.Documents("todo"))
			other := openSerializable(t, dsn, nil, core.Documents("todo"))
			rec := func(status core.PushStatus) core.IdempotencyRecord {
				return core.IdempotencyRecord{Principal: "p", OpID: "op1", RequestHash: "h", Status: status, CreatedAt: time.Now()}
			}
			ctx := t.Context()
			runs, swallowed := 0, 0
			err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
				runs++
				if _, err := bunstore.Bun(tx).ExecContext(ctx, "SELECT 1"); err != nil {
					return err
				}
				if runs == 1 {
					if err := other.Update(ctx, func(ctx context.Context, tx core.Tx) error {
						return tx.PutIdempotent(ctx, rec(core.StatusRejected))
					}); err != nil {
						t.Errorf("conflicting write: %v", err)
					}
				}
				if err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
					return tx.PutIdempotent(ctx, rec(core.StatusApplied))
				}); err != nil {
					swallowed++ // answered "retry" by the caller, the batch goes on
				}
				return nil
			})
			var got core.IdempotencyRecord
			if verr := s.View(ctx, func(ctx context.Context, tx core.Tx) error {
				var err error
				got, err = tx.Idempotent(ctx, "p", "op1")
				return err
			}); verr != nil {
				t.Fatal(verr)
			}
			if attempts == 0 {
				if err != nil || runs != 2 || swallowed != 1 || got.Status != core.StatusApplied {
					t.Fatalf("Update: %v after %d runs (%d failures swallowed), record %v; want nil after 2 runs, the rerun's record",
						err, runs, swallowed, got.Status)
				}
				return
			}
			// Without retries the failure is returned, not committed as if
			// the swallowed write had been a decision.
			if err == nil || runs != 1 || got.Status != core.StatusRejected {
				t.Fatalf("without retry: Update: %v after %d runs, record %v; want an error after 1 run and the other's record", err, runs, got.Status)
			}
		})
	}
}

// TestEscalationHoldsOffOtherWriters: a transaction that lost three times
// begins its fourth run by locking out every writer (LOCK TABLE
// offsync_versions, which takes no snapshot): a writer of the kind waits
// for it instead of beating it again, and it commits.
func TestEscalationHoldsOffOtherWriters(t *testing.T) {
	dsn := pgtest.New(t)
	s := openSerializable(t, dsn, nil, core.Documents("todo"))
	other := openSerializable(t, dsn, nil, core.Documents("todo"))
	ctx := t.Context()
	runs := 0
	otherDone := make(chan error, 1)
	err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		runs++
		if _, err := bunstore.Bun(tx).ExecContext(ctx, "SELECT 1"); err != nil {
			return err
		}
		if runs <= 3 {
			conflict(t, ctx, other, "todo")
		} else {
			// Escalated: the other writer now waits for this transaction.
			go func() {
				otherDone <- other.Update(context.Background(), func(ctx context.Context, tx core.Tx) error {
					_, err := tx.NextVersion(ctx, "todo", time.Now())
					return err
				})
			}()
			for {
				n, err := lockWaiters(ctx, other.DB())
				if err != nil {
					return err
				}
				if n > 0 {
					break
				}
				select {
				case err := <-otherDone:
					return fmt.Errorf("the other writer did not wait for the escalated run: %v", err)
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
		_, err := tx.NextVersion(ctx, "todo", time.Now())
		return err
	})
	if err != nil || runs != 4 || s.Escalations() != 1 {
		t.Fatalf("Update: %v after %d runs, %d escalations; want nil after 4, 1", err, runs, s.Escalations())
	}
	if err := <-otherDone; err != nil {
		t.Fatalf("the writer that waited: %v", err)
	}
}
