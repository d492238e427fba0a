package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

// The regression guard of the sync path's cost, counted rather than timed:
// the SQL statements (and transactions) the SQLite stores run per pushed
// and per pulled record. Every count is exact and repeats on any machine;
// a change that adds a statement per record, or per page, raises it.
//
// The ceilings are today's counts. When a change lowers a count, lower its
// ceiling with it (the failure message prints the counts); raising one
// needs a reason in the commit that does it.

// stmtCeilings bound the statements ("…/stmts") and transactions
// ("…/txs") of a push and of a pull of guardRecords records, in batches and
// pages of 500 (the engine's defaults), on the client's replica and on the
// authority. Divided by guardRecords, they are the costs per record.
var stmtCeilings = map[string]int64{
	"push/replica/stmts":   86,
	"push/replica/txs":     11,
	"push/authority/stmts": 97,
	"push/authority/txs":   4,
	// A first walk's bookkeeping (rows the authority no longer has are
	// removed when a walk from the start ends) costs a new replica one
	// read, in the transaction that reads its cursor; the walk state is
	// read once per Sync and a walk with nothing to finish ends without a
	// transaction.
	"pull/replica/stmts":   33,
	"pull/replica/txs":     8,
	"pull/authority/stmts": 5,
	"pull/authority/txs":   4,
}

// guardRecords is the size of the guarded push and pull.
const guardRecords = 2000

// counter counts what runs through one counted SQLite driver.
type counter struct {
	statements atomic.Int64 // Exec and Query calls, on connections and prepared statements
	txs        atomic.Int64 // transactions begun
}

func (c *counter) reset() { c.statements.Store(0); c.txs.Store(0) }

var (
	countedMu      sync.Mutex
	countedDrivers = map[string]*counter{}
)

// countedSQLite registers (once) a database/sql driver named name that
// wraps modernc.org/sqlite's and counts the statements it runs.
func countedSQLite(t testing.TB, name string) *counter {
	t.Helper()
	countedMu.Lock()
	defer countedMu.Unlock()
	if c, ok := countedDrivers[name]; ok {
		return c
	}
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	inner := db.Driver()
	db.Close()
	c := &counter{}
	sql.Register(name, countingDriver{inner: inner, n: c})
	countedDrivers[name] = c
	return c
}

type countingDriver struct {
	inner driver.Driver
	n     *counter
}

func (d countingDriver) Open(name string) (driver.Conn, error) {
	conn, err := d.inner.Open(name)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: conn, n: d.n}, nil
}

// countingConn passes every optional interface database/sql uses through
// to modernc.org/sqlite's connection, counting statements on the way.
type countingConn struct {
	driver.Conn
	n *counter
}

func (c *countingConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *countingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var st driver.Stmt
	var err error
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		st, err = p.PrepareContext(ctx, query)
	} else {
		st, err = c.Conn.Prepare(query)
	}
	if err != nil {
		return nil, err
	}
	return &countingStmt{Stmt: st, n: c.n}, nil
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.n.txs.Add(1)
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *countingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.n.statements.Add(1)
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c *countingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.n.statements.Add(1)
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *countingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if v, ok := c.Conn.(driver.NamedValueChecker); ok {
		return v.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

type countingStmt struct {
	driver.Stmt
	n *counter
}

func (s *countingStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.n.statements.Add(1)
	return s.Stmt.Exec(args) //nolint:staticcheck // the driver's own fallback
}

func (s *countingStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.n.statements.Add(1)
	return s.Stmt.Query(args) //nolint:staticcheck // the driver's own fallback
}

func (s *countingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.n.statements.Add(1)
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s *countingStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	s.n.statements.Add(1)
	return s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
}

func (s *countingStmt) CheckNamedValue(nv *driver.NamedValue) error {
	if v, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return v.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// syncCounts is what one push and one pull of guardRecords cost:
// "push/replica/stmts" → statements, "push/replica/txs" → transactions.
type syncCounts map[string]int64

// measureSync pushes guardRecords queued writes from a replica to an
// in-process authority (durable SQLite, as the bench's), then pulls them
// into a fresh replica, counting the statements of each store during the
// sync alone. batch is the engine's push batch size and pageSize the
// reader's pull page size (0: the defaults).
func measureSync(t *testing.T, batch, pageSize int) syncCounts {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	authN := countedSQLite(t, "sqlite-counted-authority")
	replN := countedSQLite(t, "sqlite-counted-replica")

	auth, err := sqlite.Open(ctx, filepath.Join(dir, "auth.db"), &sqlite.Options{Synchronous: "FULL", Driver: "sqlite-counted-authority"})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	svc, err := server.New(ctx, auth, &server.Options{Tables: []core.Table{Items}})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	replica := func(name string, batch, pageSize int) (*core.Engine, func()) {
		st, err := sqlite.Open(ctx, filepath.Join(dir, name), &sqlite.Options{Driver: "sqlite-counted-replica"})
		if err != nil {
			t.Fatal(err)
		}
		eng, err := core.NewEngine(ctx, st, svc, &core.Options{Tables: []core.Table{Items}, BatchSize: batch, PageSize: pageSize})
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		return eng, func() { eng.Close(); st.Close() }
	}
	out := syncCounts{}
	record := func(phase string) {
		for side, n := range map[string]*counter{"replica": replN, "authority": authN} {
			out[phase+"/"+side+"/stmts"] = n.statements.Load()
			out[phase+"/"+side+"/txs"] = n.txs.Load()
		}
	}

	writer, closeWriter := replica("writer.db", batch, 0)
	defer closeWriter()
	if err := enqueue(ctx, writer, 0, guardRecords); err != nil {
		t.Fatal(err)
	}
	authN.reset()
	replN.reset()
	stats, err := writer.Sync(ctx, core.PullKinds())
	if err != nil || stats.Pushed != guardRecords {
		t.Fatalf("push: %+v, %v", stats, err)
	}
	record("push")

	reader, closeReader := replica("reader.db", 0, pageSize)
	defer closeReader()
	authN.reset()
	replN.reset()
	stats, err = reader.Sync(ctx)
	if err != nil || stats.Pulled != guardRecords {
		t.Fatalf("pull: %+v, %v", stats, err)
	}
	record("pull")
	return out
}

// exceeded lists the counts above their ceilings.
func exceeded(got syncCounts) []string {
	var out []string
	for k, ceiling := range stmtCeilings {
		if got[k] > ceiling {
			out = append(out, fmt.Sprintf("%s: %d for %d records (%.4f per record), ceiling %d", k, got[k], guardRecords,
				float64(got[k])/guardRecords, ceiling))
		}
	}
	sort.Strings(out)
	return out
}

func formatCounts(c syncCounts) string {
	var b strings.Builder
	for _, k := range []string{"push/replica", "push/authority", "pull/replica", "pull/authority"} {
		st, tx := c[k+"/stmts"], c[k+"/txs"]
		fmt.Fprintf(&b, "  %-15s %4d statements (%.4f per record), %3d transactions (%.4f per record)\n",
			k, st, float64(st)/guardRecords, tx, float64(tx)/guardRecords)
	}
	return b.String()
}

// TestStatementsPerRecord is the regression guard: the statements the
// SQLite stores run per pushed and per pulled record must not grow.
func TestStatementsPerRecord(t *testing.T) {
	got := measureSync(t, 0, 0)
	t.Logf("statements per record (%d records):\n%s", guardRecords, formatCounts(got))
	if bad := exceeded(got); len(bad) > 0 {
		t.Errorf("the sync path runs more SQL per record than before:\n  %s\n(all counts:\n%s)",
			strings.Join(bad, "\n  "), formatCounts(got))
	}
	// The counts are exact: a second measurement gives the same.
	if again := measureSync(t, 0, 0); formatCounts(again) != formatCounts(got) {
		t.Errorf("counts differ between two runs:\n%s\n%s", formatCounts(got), formatCounts(again))
	}
}

// TestStatementsPerRecordCatchesGrowth is the guard's negative control:
// pushing one op per batch, or pulling pages of 100 records rather than
// 500 (a few statements per page more: 0.07 per record), costs more
// statements per record, and the guard says so, for the push and for the
// pull.
func TestStatementsPerRecordCatchesGrowth(t *testing.T) {
	push := measureSync(t, 1, 0)
	if bad := exceeded(push); !slices.ContainsFunc(bad, func(s string) bool { return strings.HasPrefix(s, "push/replica/stmts") }) {
		t.Fatalf("one op per push batch stayed within the push ceilings:\n%s", formatCounts(push))
	}
	pull := measureSync(t, 0, 100)
	if bad := exceeded(pull); !slices.ContainsFunc(bad, func(s string) bool { return strings.HasPrefix(s, "pull/replica/stmts") }) {
		t.Fatalf("pages of 100 records stayed within the pull ceilings:\n%s", formatCounts(pull))
	}
}
