package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The outbox statements of the write path. bun formats values into the SQL
// text, so each statement would be parsed again; on SQLite, whose write pool
// is one connection, these are prepared once on it and every write
// transaction reuses them.
const (
	qEnqueue = `INSERT INTO offsync_outbox (op_id, kind, id, type, payload, base_updated_at, base_payload,
		changed_fields, edited_at, force, enqueued_at, tx_id, schema_version, attempts, next_attempt_at,
		last_error, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`
	qGetOp       = "SELECT " + opColumns + " FROM offsync_outbox WHERE op_id = ?"
	qOpsOfRecord = "SELECT " + opColumns + " FROM offsync_outbox WHERE kind = ? AND id = ? ORDER BY seq"
	qUpdateOp    = `UPDATE offsync_outbox SET op_id = ?, kind = ?, id = ?, type = ?, payload = ?,
		base_updated_at = ?, base_payload = ?, changed_fields = ?, edited_at = ?, force = ?, enqueued_at = ?,
		tx_id = ?, schema_version = ?, attempts = ?, next_attempt_at = ?, last_error = ?, state = ?
		WHERE op_id = ?`
	qDeleteOp = "DELETE FROM offsync_outbox WHERE op_id = ?"
)

var hotQueries = []string{qEnqueue, qGetOp, qOpsOfRecord, qUpdateOp, qDeleteOp}

// prepareHot prepares the hot statements on the write pool, once, outside
// any transaction. Only SQLite uses them: its single write connection keeps
// them prepared for good.
func (s *Store) prepareHot(ctx context.Context) error {
	if s.hot != nil || s.d.Name() != "sqlite" {
		return nil
	}
	hot := make(map[string]*sql.Stmt, len(hotQueries))
	for _, q := range hotQueries {
		st, err := s.db.DB.PrepareContext(ctx, q)
		if err != nil {
			for _, st := range hot {
				st.Close()
			}
			return fmt.Errorf("offsync: %s: prepare outbox statements: %w", s.d.Name(), err)
		}
		hot[q] = st
	}
	s.hot = hot
	return nil
}

func (s *Store) closeHot() error {
	var errs []error
	for _, st := range s.hot {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// stmt returns the prepared statement of query bound to this write
// transaction, or nil when the store has none (then the caller uses bun).
func (t *Tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if t.readOnly || t.s.hot == nil {
		return nil
	}
	st, ok := t.s.hot[query]
	if !ok {
		return nil
	}
	return t.tx.StmtContext(ctx, st)
}

// scanOps reads op rows selected with opColumns.
func scanOps(rows *sql.Rows) ([]opRow, error) {
	defer rows.Close()
	var out []opRow
	for rows.Next() {
		var r opRow
		if err := rows.Scan(&r.Seq, &r.OpID, &r.Kind, &r.ID, &r.Type, &r.Payload, &r.BaseUpdatedAt,
			&r.BasePayload, &r.ChangedFields, &r.EditedAt, &r.Force, &r.EnqueuedAt, &r.TxID,
			&r.SchemaVersion, &r.Attempts, &r.NextAttemptAt, &r.LastError, &r.State); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
