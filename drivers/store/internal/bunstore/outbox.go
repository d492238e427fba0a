package bunstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/jsonscan"
	"github.com/uptrace/bun"
)

// opRow is a row of offsync_outbox.
type opRow struct {
	Seq           int64          `bun:"seq"`
	OpID          string         `bun:"op_id"`
	Kind          string         `bun:"kind"`
	ID            string         `bun:"id"`
	Type          string         `bun:"type"`
	Payload       sql.NullString `bun:"payload"`
	BaseUpdatedAt sql.NullInt64  `bun:"base_updated_at"`
	BasePayload   sql.NullString `bun:"base_payload"`
	ChangedFields sql.NullString `bun:"changed_fields"`
	EditedAt      sql.NullInt64  `bun:"edited_at"`
	Force         bool           `bun:"force"`
	EnqueuedAt    sql.NullInt64  `bun:"enqueued_at"`
	TxID          string         `bun:"tx_id"`
	SchemaVersion int            `bun:"schema_version"`
	Attempts      int            `bun:"attempts"`
	NextAttemptAt sql.NullInt64  `bun:"next_attempt_at"`
	LastError     string         `bun:"last_error"`
	State         string         `bun:"state"`
}

const opColumns = `seq, op_id, kind, id, type, payload, base_updated_at, base_payload, changed_fields,
	edited_at, force, enqueued_at, tx_id, schema_version, attempts, next_attempt_at, last_error, state`

func nullTime(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

func (r *opRow) op() (core.Op, error) {
	op := core.Op{
		OpID: r.OpID, Seq: r.Seq, Kind: r.Kind, ID: r.ID, Type: core.OpType(r.Type),
		BaseUpdatedAt: nullTime(r.BaseUpdatedAt), EditedAt: nullTime(r.EditedAt), Force: r.Force,
		EnqueuedAt: nullTime(r.EnqueuedAt), TxID: r.TxID, SchemaVersion: r.SchemaVersion,
		Attempts: r.Attempts, NextAttemptAt: nullTime(r.NextAttemptAt), LastError: r.LastError,
		State: core.OpState(r.State),
	}
	if r.Payload.Valid {
		op.Payload = json.RawMessage(r.Payload.String)
	}
	if r.BasePayload.Valid {
		op.BasePayload = json.RawMessage(r.BasePayload.String)
	}
	if r.ChangedFields.Valid {
		op.ChangedFields = []string{}
		if err := json.Unmarshal([]byte(r.ChangedFields.String), &op.ChangedFields); err != nil {
			return core.Op{}, fmt.Errorf("%w: op %s: stored changed fields are corrupt", core.ErrInvalid, r.OpID)
		}
	}
	return op, nil
}

// nullJSON is raw JSON as a nullable SQL text argument.
func nullJSON(raw json.RawMessage) any {
	if raw == nil {
		return nil
	}
	return string(raw)
}

// opArgs checks op and returns its column values after seq, in opColumns order.
func opArgs(op *core.Op) ([]any, error) {
	if op.OpID == "" || op.Kind == "" || op.ID == "" {
		return nil, fmt.Errorf("%w: op needs an op id, a kind and an id", core.ErrInvalid)
	}
	if op.Type != core.OpUpsert && op.Type != core.OpDelete {
		return nil, fmt.Errorf("%w: op %s: unknown type %q", core.ErrInvalid, op.OpID, op.Type)
	}
	if op.Payload != nil && !jsonscan.Valid(op.Payload) {
		return nil, fmt.Errorf("%w: op %s: payload is not JSON", core.ErrInvalid, op.OpID)
	}
	if op.BasePayload != nil && !jsonscan.Valid(op.BasePayload) {
		return nil, fmt.Errorf("%w: op %s: base payload is not JSON", core.ErrInvalid, op.OpID)
	}
	state := op.State
	if state == "" {
		state = core.StatePending
	}
	var changed any
	if op.ChangedFields != nil {
		b, err := json.Marshal(op.ChangedFields)
		if err != nil {
			return nil, err
		}
		changed = string(b)
	}
	return []any{op.OpID, op.Kind, op.ID, string(op.Type), nullJSON(op.Payload),
		core.TimestampOf(op.BaseUpdatedAt), nullJSON(op.BasePayload), changed,
		core.TimestampOf(op.EditedAt), op.Force, core.TimestampOf(op.EnqueuedAt), op.TxID,
		op.SchemaVersion, op.Attempts, core.TimestampOf(op.NextAttemptAt), op.LastError, string(state)}, nil
}

// Enqueue implements core.ReplicaTx; it sets op.Seq (and State to pending
// when empty).
func (t *Tx) Enqueue(ctx context.Context, op *core.Op) error {
	if _, err := t.s.kind(op.Kind); err != nil {
		return err
	}
	args, err := opArgs(op)
	if err != nil {
		return err
	}
	var seq int64
	if t.s.sys.postgres {
		var rows *sql.Rows
		if rows, err = t.query(ctx, t.s.sys.enqueue, args...); err == nil {
			defer rows.Close()
			if !rows.Next() {
				err = errors.Join(rows.Err(), errors.New("no seq returned"))
			} else {
				err = rows.Scan(&seq)
			}
		}
	} else {
		var res sql.Result
		if res, err = t.exec(ctx, t.s.sys.enqueue, args...); err == nil {
			seq, err = res.LastInsertId() // seq is the rowid
		}
	}
	if err != nil {
		return t.dbErr("enqueue", err)
	}
	op.Seq = seq
	if op.State == "" {
		op.State = core.StatePending
	}
	return nil
}

// Ops implements core.ReplicaTx.
func (t *Tx) Ops(ctx context.Context, f core.OpFilter) ([]core.Op, error) {
	if f.Kind != "" && len(f.Kinds) == 0 && len(f.States) == 0 && f.Limit == 0 && f.AfterSeq == 0 {
		return t.queryOps(ctx, "ops", t.s.sys.opsOfRecord, f.Kind, f.ID)
	}
	q, args := t.s.opsQuery(f)
	return t.queryOpsLimit(ctx, "ops", f.Limit, q, args...)
}

// opsQuery is the query of Ops for f and its arguments.
func (s *Store) opsQuery(f core.OpFilter) (string, []any) {
	var where []string
	var args []any
	in := func(col string, vals []string) {
		where = append(where, col+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+")")
		for _, v := range vals {
			args = append(args, v)
		}
	}
	if len(f.Kinds) > 0 {
		in(s.kindColumn(f.Kinds), f.Kinds)
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, s := range f.States {
			states[i] = string(s)
		}
		in("state", states)
	}
	if f.Kind != "" || f.ID != "" {
		where = append(where, "kind = ? AND id = ?")
		args = append(args, f.Kind, f.ID)
	}
	if f.AfterSeq > 0 {
		where = append(where, "seq > ?")
		args = append(args, f.AfterSeq)
	}
	q := "SELECT " + opColumns + " FROM offsync_outbox"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq"
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	return s.sys.numbered(q), args
}

// kindColumn is how Ops names the kind column in a filter on kinds. The
// outbox's only index on kind is (kind, id): SQLite, without statistics,
// reads "kind IN (...) ORDER BY seq" through it, then sorts every op of
// those kinds (whole rows) in a temporary B-tree to return the first page,
// however short the page, for every page of a push's heads. When the kinds
// are all the registered ones (a push of every kind, the engine's default)
// the ops in seq order are nearly all wanted: there SQLite is told not to
// use the index (the unary "+" keeps the term out of index choice), so it
// walks the table in seq order from AfterSeq and stops at the page's
// limit. A push of a few kinds keeps the index, which skips the others'
// ops. Postgres plans from statistics and gets the column as it is.
func (s *Store) kindColumn(kinds []string) string {
	if s.sys.postgres {
		return "kind"
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k := range s.kinds {
		if !slices.Contains(kinds, k) {
			return "kind"
		}
	}
	return "+kind"
}

// queryOps runs a query selecting opColumns.
func (t *Tx) queryOps(ctx context.Context, what, query string, args ...any) ([]core.Op, error) {
	return t.queryOpsLimit(ctx, what, 0, query, args...)
}

// queryOpsLimit is queryOps for a query returning at most limit ops (0: no
// limit).
func (t *Tx) queryOpsLimit(ctx context.Context, what string, limit int, query string, args ...any) ([]core.Op, error) {
	rows, err := t.query(ctx, query, args...)
	if err != nil {
		return nil, t.dbErr(what, err)
	}
	ops, err := scanOps(rows, limit)
	if err != nil {
		return nil, t.dbErr(what, err)
	}
	return ops, nil
}

// GetOp implements core.ReplicaTx.
func (t *Tx) GetOp(ctx context.Context, opID string) (core.Op, error) {
	ops, err := t.queryOps(ctx, "get op", t.s.sys.getOp, opID)
	if err != nil {
		return core.Op{}, err
	}
	if len(ops) == 0 {
		return core.Op{}, fmt.Errorf("op %q: %w", opID, core.ErrNotFound)
	}
	return ops[0], nil
}

// UpdateOp implements core.ReplicaTx: the op keeps its seq.
func (t *Tx) UpdateOp(ctx context.Context, oldOpID string, op core.Op) error {
	args, err := opArgs(&op)
	if err != nil {
		return err
	}
	res, err := t.exec(ctx, t.s.sys.updateOp, append(args, oldOpID)...)
	if err != nil {
		return t.dbErr("update op", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("update op %q: %w", oldOpID, core.ErrNotFound)
	}
	return nil
}

// DeleteOp implements core.ReplicaTx.
func (t *Tx) DeleteOp(ctx context.Context, opID string) error {
	_, err := t.exec(ctx, t.s.sys.deleteOp, opID)
	return t.dbErr("delete op", err)
}

// CountOps implements core.ReplicaTx, ordered by kind and state.
func (t *Tx) CountOps(ctx context.Context) ([]core.OpCount, error) {
	var rows []struct {
		Kind  string `bun:"kind"`
		State string `bun:"state"`
		N     int    `bun:"n"`
	}
	if err := t.tx.NewRaw(`SELECT kind, state, COUNT(*) AS n FROM offsync_outbox
		GROUP BY kind, state ORDER BY kind, state`).Scan(ctx, &rows); err != nil {
		return nil, t.dbErr("count ops", err)
	}
	out := make([]core.OpCount, len(rows))
	for i, r := range rows {
		out[i] = core.OpCount{Kind: r.Kind, State: core.OpState(r.State), Count: r.N}
	}
	return out, nil
}

// Cursor implements core.ReplicaTx.
func (t *Tx) Cursor(ctx context.Context, kind string) (core.Cursor, error) {
	var rows []struct {
		UpdatedAt sql.NullInt64 `bun:"updated_at"`
		ID        string        `bun:"id"`
	}
	if err := t.tx.NewRaw("SELECT updated_at, id FROM offsync_cursors WHERE kind = ?", kind).Scan(ctx, &rows); err != nil {
		return core.Cursor{}, t.dbErr("cursor", err)
	}
	if len(rows) == 0 {
		return core.Cursor{}, nil
	}
	return core.Cursor{UpdatedAt: nullTime(rows[0].UpdatedAt), ID: rows[0].ID}, nil
}

// SetCursor implements core.ReplicaTx; the zero cursor deletes the entry.
func (t *Tx) SetCursor(ctx context.Context, kind string, c core.Cursor) error {
	var err error
	if c.IsZero() {
		_, err = t.tx.NewRaw("DELETE FROM offsync_cursors WHERE kind = ?", kind).Exec(ctx)
	} else {
		_, err = t.tx.NewRaw(`INSERT INTO offsync_cursors (kind, updated_at, id) VALUES (?, ?, ?)
			ON CONFLICT (kind) DO UPDATE SET updated_at = EXCLUDED.updated_at, id = EXCLUDED.id`,
			kind, core.TimestampOf(c.UpdatedAt), c.ID).Exec(ctx)
	}
	return t.dbErr("set cursor", err)
}

// conflictRow is a row of offsync_conflicts.
type conflictRow struct {
	OpID          string         `bun:"op_id"`
	Kind          string         `bun:"kind"`
	ID            string         `bun:"id"`
	Type          string         `bun:"type"`
	Base          sql.NullString `bun:"base"`
	Local         sql.NullString `bun:"local"`
	Server        sql.NullString `bun:"server"`
	ChangedFields sql.NullString `bun:"changed_fields"`
	DetectedAt    sql.NullInt64  `bun:"detected_at"`
}

// PutConflict implements core.ReplicaTx.
func (t *Tx) PutConflict(ctx context.Context, c core.ConflictEntry) error {
	if c.OpID == "" || c.Kind == "" || c.ID == "" {
		return fmt.Errorf("%w: conflict entry needs an op id, a kind and an id", core.ErrInvalid)
	}
	var recs [3]any
	for i, r := range []*core.Record{c.Base, c.Local, c.Server} {
		v, err := encodeRecord(r)
		if err != nil {
			return err
		}
		recs[i] = v
	}
	var changed any
	if c.ChangedFields != nil {
		b, err := json.Marshal(c.ChangedFields)
		if err != nil {
			return err
		}
		changed = string(b)
	}
	_, err := t.tx.NewRaw(`INSERT INTO offsync_conflicts (op_id, kind, id, type, base, local, server, changed_fields, detected_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (op_id) DO UPDATE SET kind = EXCLUDED.kind, id = EXCLUDED.id, type = EXCLUDED.type,
			base = EXCLUDED.base, local = EXCLUDED.local, server = EXCLUDED.server,
			changed_fields = EXCLUDED.changed_fields, detected_at = EXCLUDED.detected_at`,
		c.OpID, c.Kind, c.ID, string(c.Type), recs[0], recs[1], recs[2], changed, core.TimestampOf(c.DetectedAt)).Exec(ctx)
	return t.dbErr("put conflict", err)
}

// Conflicts implements core.ReplicaTx, in (detected_at, op_id) order.
func (t *Tx) Conflicts(ctx context.Context, f core.ConflictFilter) ([]core.ConflictEntry, error) {
	q := t.tx.NewSelect().ColumnExpr("op_id, kind, id, type, base, local, server, changed_fields, detected_at").
		TableExpr("offsync_conflicts")
	if len(f.Kinds) > 0 {
		q = q.Where("kind IN (?)", bun.In(f.Kinds))
	}
	if f.ID != "" {
		q = q.Where("id = ?", f.ID)
	}
	q = q.Order("detected_at", "op_id")
	var rows []conflictRow
	if err := q.Scan(ctx, &rows); err != nil {
		return nil, t.dbErr("conflicts", err)
	}
	out := make([]core.ConflictEntry, 0, len(rows))
	for _, r := range rows {
		e := core.ConflictEntry{OpID: r.OpID, Kind: r.Kind, ID: r.ID, Type: core.OpType(r.Type), DetectedAt: nullTime(r.DetectedAt)}
		var err error
		if e.Base, err = decodeRecord(r.Base); err != nil {
			return nil, err
		}
		if e.Local, err = decodeRecord(r.Local); err != nil {
			return nil, err
		}
		if e.Server, err = decodeRecord(r.Server); err != nil {
			return nil, err
		}
		if r.ChangedFields.Valid {
			e.ChangedFields = []string{}
			if err := json.Unmarshal([]byte(r.ChangedFields.String), &e.ChangedFields); err != nil {
				return nil, fmt.Errorf("%w: conflict %s: stored changed fields are corrupt", core.ErrInvalid, r.OpID)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// DeleteConflict implements core.ReplicaTx.
func (t *Tx) DeleteConflict(ctx context.Context, opID string) error {
	_, err := t.tx.NewRaw("DELETE FROM offsync_conflicts WHERE op_id = ?", opID).Exec(ctx)
	return t.dbErr("delete conflict", err)
}

// Meta implements core.ReplicaTx.
func (t *Tx) Meta(ctx context.Context, key string) (string, error) {
	var vals []string
	if err := t.tx.NewRaw("SELECT value FROM offsync_meta WHERE key = ?", key).Scan(ctx, &vals); err != nil {
		return "", t.dbErr("meta", err)
	}
	if len(vals) == 0 {
		return "", fmt.Errorf("meta %q: %w", key, core.ErrNotFound)
	}
	return vals[0], nil
}

// SetMeta implements core.ReplicaTx; "" deletes the key.
func (t *Tx) SetMeta(ctx context.Context, key, value string) error {
	var err error
	if value == "" {
		_, err = t.tx.NewRaw("DELETE FROM offsync_meta WHERE key = ?", key).Exec(ctx)
	} else {
		_, err = t.tx.NewRaw(`INSERT INTO offsync_meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`, key, value).Exec(ctx)
	}
	return t.dbErr("set meta", err)
}
