package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun"
)

// Config configures New.
type Config struct {
	// DB runs write transactions (and reads when ReadDB is nil).
	DB *bun.DB
	// ReadDB, when set, runs View's read transactions, so that readers do
	// not queue behind a single write connection.
	ReadDB *bun.DB
	// Dialect is the database's part.
	Dialect Dialect
	// OnClose runs after both databases are closed (e.g. a lock release).
	OnClose func() error
	// Logger receives the store's log lines (a column Register added to a
	// synced table, one it kept); nil means slog.Default().
	Logger *slog.Logger
	// Retry bounds the reruns of a write transaction after a serialization
	// failure, where the Dialect is a Retrier (zero: DefaultRetry).
	Retry RetryPolicy
}

// Store is a core.Store over bun.
type Store struct {
	db, read *bun.DB
	d        Dialect
	onClose  func() error
	log      *slog.Logger

	schemaMu sync.Mutex // serializes Register
	migrated bool

	mu    sync.RWMutex
	kinds map[string]*kindInfo

	closed atomic.Bool

	stmts stmtCache // SQLite's prepared statements
	sys   *sysSQL   // the system tables' batch statements

	retrier Retrier      // the dialect, when it reports retryable failures
	policy  RetryPolicy  // reruns after a serialization failure (retry.go)
	retries atomic.Int64 // reruns so far

	escalations atomic.Int64 // reruns that began with the dialect's Escalate
}

var _ core.Store = (*Store)(nil)

// New returns a Store over cfg.DB. Register must be called before use.
func New(cfg Config) (*Store, error) {
	if cfg.DB == nil || cfg.Dialect == nil {
		return nil, fmt.Errorf("%w: bunstore: DB and Dialect are required", core.ErrInvalid)
	}
	read := cfg.ReadDB
	if read == nil {
		read = cfg.DB
	}
	policy, err := cfg.Retry.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{db: cfg.DB, read: read, d: cfg.Dialect, onClose: cfg.OnClose, log: cfg.Logger, kinds: map[string]*kindInfo{},
		sys: newSysSQL(cfg.Dialect.Name() == "postgres"), policy: policy}
	if r, ok := cfg.Dialect.(Retrier); ok {
		s.retrier = r
		cfg.DB.AddQueryHook(conflictHook{s})
	}
	return s, nil
}

// DB returns the write database.
func (s *Store) DB() *bun.DB { return s.db }

// ReadDB returns the database View reads from.
func (s *Store) ReadDB() *bun.DB { return s.read }

// Dialect returns the store's dialect.
func (s *Store) Dialect() Dialect { return s.d }

// Close closes the databases. Calls after the first return nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	errs = append(errs, s.closeStmts())
	if s.read != s.db {
		errs = append(errs, s.read.Close())
	}
	errs = append(errs, s.db.Close())
	if s.onClose != nil {
		errs = append(errs, s.onClose())
	}
	return errors.Join(errs...)
}

type txKey struct{ s *Store }

// Tx is a transaction of a Store; it implements core.Tx and core.BunTx.
type Tx struct {
	s        *Store
	tx       bun.Tx
	readOnly bool
	sp       int              // savepoint counter
	depth    int              // savepoints open
	locked   map[string]int   // kinds locked, by the savepoint depth they were locked at
	vlast    map[string]int64 // last version stamped per locked kind, written at commit
	attempt  int              // runs of the write transaction so far, this one included
	retry    retryState       // what decides a rerun (retry.go)
}

var (
	_ core.Tx    = (*Tx)(nil)
	_ core.BunTx = (*Tx)(nil)
)

// BunTx implements core.BunTx: it returns the bun.Tx underneath.
func (t *Tx) BunTx() any { return t.tx }

// Bun returns the bun.Tx underneath.
func (t *Tx) Bun() bun.Tx { return t.tx }

// Bun returns the bun transaction underneath a core.Tx of a bun store, or
// nil when tx is not one.
func Bun(tx core.Tx) bun.IDB {
	if t, ok := tx.(*Tx); ok {
		return t.tx
	}
	if b, ok := tx.(core.BunTx); ok {
		if idb, ok := b.BunTx().(bun.IDB); ok {
			return idb
		}
	}
	return nil
}

func (s *Store) txFrom(ctx context.Context) *Tx {
	t, _ := ctx.Value(txKey{s}).(*Tx)
	return t
}

// Update runs fn in one write transaction. Called with a ctx that carries a
// transaction of this store (the ctx given to an enclosing Update's fn), it
// joins that transaction inside a savepoint: an error undoes only fn's
// writes and is returned to the caller.
//
// Where the Dialect is a Retrier, a transaction that fails with a
// serialization failure is rolled back and fn runs again (see update in
// retry.go): fn must keep effects outside the database until Update
// returns, or call Tx.NoRetry.
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	if t := s.txFrom(ctx); t != nil {
		if t.readOnly {
			return fmt.Errorf("%w: Update inside View", core.ErrInvalid)
		}
		return t.Savepoint(ctx, func(ctx context.Context) error { return fn(ctx, t) })
	}
	return s.update(ctx, fn)
}

// View runs fn in a read transaction; inside an Update or View (by ctx) it
// joins that transaction.
func (s *Store) View(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	if t := s.txFrom(ctx); t != nil {
		return fn(ctx, t)
	}
	_, err := s.run(ctx, s.read, s.d.ReadTxOptions(), true, 0, fn)
	return err
}

// run runs fn in one transaction, the attempt-th run of a write
// transaction (0 for a read). It returns the transaction (nil when none
// began), so that update can tell whether to run it again.
func (s *Store) run(ctx context.Context, db *bun.DB, opts *sql.TxOptions, readOnly bool, attempt int, fn func(ctx context.Context, tx core.Tx) error) (_ *Tx, err error) {
	if s.closed.Load() {
		return nil, core.ErrClosed
	}
	btx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("offsync: %s: begin: %w", s.d.Name(), err)
	}
	t := &Tx{s: s, tx: btx, readOnly: readOnly, attempt: attempt}
	done := false
	defer func() {
		if !done {
			_ = btx.Rollback()
		}
	}()
	tctx := context.WithValue(ctx, txKey{s}, t)
	if !readOnly {
		if err := s.escalate(tctx, btx, attempt); err != nil {
			done = true
			_ = btx.Rollback()
			return t, err
		}
	}
	if err := fn(tctx, t); err != nil {
		done = true
		_ = btx.Rollback()
		return t, err
	}
	done = true
	if readOnly {
		_ = btx.Rollback()
		return t, nil
	}
	if t.retry.conflict.Load() {
		_ = btx.Rollback()
		return t, fmt.Errorf("offsync: %s: %w", s.d.Name(), errConflictSeen)
	}
	if err := t.flushVersions(tctx); err != nil {
		_ = btx.Rollback()
		return t, err
	}
	if err := btx.Commit(); err != nil {
		return t, fmt.Errorf("offsync: %s: commit: %w", s.d.Name(), err)
	}
	return t, nil
}

// Savepoint implements core.AuthorityTx: fn runs inside a savepoint; when it
// fails, its writes are rolled back and the transaction goes on.
func (t *Tx) Savepoint(ctx context.Context, fn func(ctx context.Context) error) error {
	t.sp++
	name := fmt.Sprintf("offsync_sp_%d", t.sp)
	if _, err := t.tx.ExecContext(ctx, "SAVEPOINT "+name); err != nil {
		return fmt.Errorf("offsync: savepoint: %w", err)
	}
	t.depth++
	err := fn(ctx)
	t.depth--
	if err != nil {
		t.noteErr(err)
		if _, rerr := t.tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+name); rerr != nil {
			return errors.Join(err, fmt.Errorf("offsync: rollback to savepoint: %w", rerr))
		}
		// Locks taken inside the savepoint are released by the rollback
		// (Postgres row locks are): forget those kinds, so the next read
		// takes the lock again. Locks taken before it stay.
		t.forgetLocks(t.depth + 1)
		if _, rerr := t.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name); rerr != nil {
			return errors.Join(err, fmt.Errorf("offsync: release savepoint: %w", rerr))
		}
		return err
	}
	if _, err := t.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+name); err != nil {
		return fmt.Errorf("offsync: release savepoint: %w", err)
	}
	t.keepLocks(t.depth + 1)
	return nil
}

// dbErr wraps a database error with the operation.
func (t *Tx) dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	t.noteErr(err)
	return fmt.Errorf("offsync: %s: %s: %w", t.s.d.Name(), op, err)
}
