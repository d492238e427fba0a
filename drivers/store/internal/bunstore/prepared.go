package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/offsync/offsync/core"
)

// The outbox statements of the write path, written with ? placeholders
// (sysSQL numbers them for Postgres). bun formats values into the SQL text,
// so each statement would be parsed again; these run with bound parameters,
// on SQLite as statements prepared once (stmtCache).
const (
	qEnqueue = `INSERT INTO offsync_outbox (op_id, kind, id, type, payload, base_updated_at, base_payload,
		changed_fields, edited_at, force, enqueued_at, tx_id, schema_version, attempts, next_attempt_at,
		last_error, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qEnqueueReturning = qEnqueue + " RETURNING seq"
	qGetOp            = "SELECT " + opColumns + " FROM offsync_outbox WHERE op_id = ?"
	qOpsOfRecord      = "SELECT " + opColumns + " FROM offsync_outbox WHERE kind = ? AND id = ? ORDER BY seq"
	qUpdateOp         = `UPDATE offsync_outbox SET op_id = ?, kind = ?, id = ?, type = ?, payload = ?,
		base_updated_at = ?, base_payload = ?, changed_fields = ?, edited_at = ?, force = ?, enqueued_at = ?,
		tx_id = ?, schema_version = ?, attempts = ?, next_attempt_at = ?, last_error = ?, state = ?
		WHERE op_id = ?`
	qDeleteOp = "DELETE FROM offsync_outbox WHERE op_id = ?"
)

// stmtCache keeps SQLite's prepared statements, one per query text and
// pool. They are prepared by Register, outside any transaction (the write
// pool is a single connection, which a transaction holds); the read pool's
// connections prepare a statement as they first run it. The queries are
// the store's own (the outbox's and a few per kind), so the cache is small.
type stmtCache struct {
	mu    sync.RWMutex
	write map[string]*sql.Stmt
	read  map[string]*sql.Stmt
}

// prepare prepares queries on both pools (SQLite only; pgx caches
// statements per connection by itself).
func (s *Store) prepare(ctx context.Context, queries []string) error {
	if s.d.Name() != "sqlite" {
		return nil
	}
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pool := range []struct {
		m  *map[string]*sql.Stmt
		db *sql.DB
	}{{&c.write, s.db.DB}, {&c.read, s.read.DB}} {
		if *pool.m == nil {
			*pool.m = map[string]*sql.Stmt{}
		}
		for _, q := range queries {
			if (*pool.m)[q] != nil {
				continue
			}
			st, err := pool.db.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("offsync: %s: prepare: %w", s.d.Name(), err)
			}
			(*pool.m)[q] = st
		}
	}
	return nil
}

// prepared returns the prepared statement of query on the write or read
// pool, or nil when there is none.
func (s *Store) prepared(readOnly bool, query string) *sql.Stmt {
	c := &s.stmts
	c.mu.RLock()
	defer c.mu.RUnlock()
	if readOnly {
		return c.read[query]
	}
	return c.write[query]
}

func (s *Store) closeStmts() error {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, m := range []map[string]*sql.Stmt{c.write, c.read} {
		for _, st := range m {
			errs = append(errs, st.Close())
		}
	}
	c.write, c.read = nil, nil
	return errors.Join(errs...)
}

// query runs a query written with the dialect's placeholders and bound
// arguments: as a prepared statement when Register prepared it (SQLite),
// else through the driver (pgx prepares and caches it).
// Both bypass bun's query hook: a failure is noted for the retry here.
func (t *Tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.s.prepared(t.readOnly, query); st != nil {
		rows, err := t.tx.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
		return rows, t.noteErr(err)
	}
	rows, err := t.tx.Tx.QueryContext(ctx, query, args...)
	return rows, t.noteErr(err)
}

// exec is query for statements that return no rows.
func (t *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.readOnly {
		return nil, fmt.Errorf("%w: write in a read transaction", core.ErrInvalid)
	}
	if st := t.s.prepared(false, query); st != nil {
		res, err := t.tx.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
		return res, t.noteErr(err)
	}
	res, err := t.tx.Tx.ExecContext(ctx, query, args...)
	return res, t.noteErr(err)
}

// maxOpsHint bounds the ops scanOps makes room for before reading them.
const maxOpsHint = 4096

// scanOps reads the ops of rows selected with opColumns. An outbox read
// may hold many thousands of ops: they are converted as they are scanned
// into chunks, and the chunks copied once into a slice of the exact size,
// so a read of n ops moves each op once instead of growing one slice of
// rows and then converting it (which, in a push of 10,000 queued writes,
// cost two fifths of reading the outbox). A read with a limit (a page of a
// push's heads) sizes its first chunk to the limit, up to maxOpsHint: a
// full page is then read into one slice, with no copy.
func scanOps(rows *sql.Rows, limit int) ([]core.Op, error) {
	defer rows.Close()
	const chunk = 256
	var full [][]core.Op
	cur := make([]core.Op, 0, min(max(limit, 8), maxOpsHint))
	n := 0
	var r opRow
	for rows.Next() {
		if err := rows.Scan(&r.Seq, &r.OpID, &r.Kind, &r.ID, &r.Type, &r.Payload, &r.BaseUpdatedAt,
			&r.BasePayload, &r.ChangedFields, &r.EditedAt, &r.Force, &r.EnqueuedAt, &r.TxID,
			&r.SchemaVersion, &r.Attempts, &r.NextAttemptAt, &r.LastError, &r.State); err != nil {
			return nil, err
		}
		op, err := r.op()
		if err != nil {
			return nil, err
		}
		if len(cur) == cap(cur) && cap(cur) >= chunk {
			full = append(full, cur)
			cur = make([]core.Op, 0, chunk)
		}
		cur = append(cur, op)
		n++
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(full) == 0 {
		return cur, nil
	}
	out := make([]core.Op, 0, n)
	for _, c := range full {
		out = append(out, c...)
	}
	return append(out, cur...), nil
}
