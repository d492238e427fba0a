package bunstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun"
)

// NextVersion implements core.AuthorityTx: after the dialect's per-kind lock
// it returns max(now, last+1). The lock is taken once per transaction and
// kind; while it is held no other writer can move last, so the transaction
// keeps last itself and writes it to offsync_versions once, just before it
// commits (flushVersions). Rewriting the row for every op would leave, on
// Postgres, a chain of row versions that every later op of the batch walks.
func (t *Tx) NextVersion(ctx context.Context, kind string, now time.Time) (time.Time, error) {
	if t.readOnly {
		return time.Time{}, fmt.Errorf("%w: NextVersion in a read transaction", core.ErrInvalid)
	}
	if _, err := t.s.kind(kind); err != nil {
		return time.Time{}, err
	}
	_, locked := t.locked[kind]
	last, known := t.vlast[kind]
	if !locked || !known {
		l, err := t.s.d.LockVersion(ctx, t.tx, kind)
		if err != nil {
			return time.Time{}, t.dbErr("lock version", err)
		}
		if !locked {
			if t.locked == nil {
				t.locked = map[string]int{}
			}
			t.locked[kind] = t.depth
		}
		last = l
	}
	v := core.Micro(now).UnixMicro()
	if v <= last {
		v = last + 1
	}
	if t.vlast == nil {
		t.vlast = map[string]int64{}
	}
	t.vlast[kind] = v
	return time.UnixMicro(v).UTC(), nil
}

// flushVersions records, before the transaction commits, the last version
// stamped of each kind. Every kind in vlast is locked by the transaction
// (forgetLocks drops a kind whose lock a savepoint's rollback released,
// with the versions stamped under it), so this never waits.
func (t *Tx) flushVersions(ctx context.Context) error {
	if len(t.vlast) == 0 {
		return nil
	}
	kinds := make([]string, 0, len(t.vlast))
	for k := range t.vlast {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		if _, err := t.tx.NewRaw(`INSERT INTO offsync_versions (kind, last) VALUES (?, ?)
			ON CONFLICT (kind) DO UPDATE SET last = CASE WHEN EXCLUDED.last > offsync_versions.last
				THEN EXCLUDED.last ELSE offsync_versions.last END`, k, t.vlast[k]).Exec(ctx); err != nil {
			return t.dbErr("record version", err)
		}
	}
	return nil
}

// Changes implements core.AuthorityTx.
func (t *Tx) Changes(ctx context.Context, q core.ChangesQuery) ([]core.Record, error) {
	k, err := t.s.kind(q.Kind)
	if err != nil {
		return nil, err
	}
	if q.Limit < 0 {
		return nil, fmt.Errorf("%w: negative limit", core.ErrInvalid)
	}
	if !k.typed {
		sq, none, err := t.feed(t.tx.NewSelect().Model((*docRow)(nil)), k, q)
		if err != nil || none {
			return nil, err
		}
		sq = sq.Order("updated_at", "id")
		if q.Limit > 0 {
			sq = sq.Limit(int64(q.Limit))
		}
		rows, err := sq.Rows(ctx)
		if err != nil {
			return nil, t.dbErr("changes", err)
		}
		defer rows.Close()
		var out []core.Record
		var budget pageBudget
		for rows.Next() {
			var row docRow
			if err := t.s.db.ScanRow(ctx, rows, &row); err != nil {
				return nil, t.dbErr("changes", err)
			}
			out = append(out, row.record())
			if budget.full(q, &out[len(out)-1], len(out)) {
				break
			}
		}
		if err := rows.Err(); err != nil {
			return nil, t.dbErr("changes", err)
		}
		return out, nil
	}
	if k.rows.json != nil && q.Filter == nil && q.Limit > 0 {
		return t.typedFeed(ctx, k, q)
	}
	slice := reflect.New(reflect.SliceOf(k.typ))
	sq, none, err := t.feed(t.tx.NewSelect().Model(slice.Interface()), k, q)
	if err != nil || none {
		return nil, err
	}
	sq = sq.OrderExpr("? ASC, ? ASC", bun.Ident("updated_at"), bun.Ident("id"))
	if q.Limit > 0 {
		sq = sq.Limit(int64(q.Limit))
	}
	if err := sq.Scan(ctx); err != nil {
		return nil, t.dbErr("changes", err)
	}
	return k.records(slice.Elem())
}

// pageBudget tracks core.ChangesQuery.MaxBytes over the records read.
type pageBudget struct{ used int }

// full adds rec, the n-th record read, and reports whether reading stops.
func (b *pageBudget) full(q core.ChangesQuery, rec *core.Record, n int) bool {
	if q.MaxBytes <= 0 {
		return false
	}
	b.used += core.RecordCost(rec)
	return n > 1 && b.used > q.MaxBytes
}

// CountChanges counts the rows of a kind's feed after q.After within
// q.Filter, at most q.Limit of them when it is positive (so the count costs
// no more than reading that many rows), so an authority can tell a puller
// how much remains. It is not part of core.AuthorityTx; the server finds it
// by type assertion.
func (t *Tx) CountChanges(ctx context.Context, q core.ChangesQuery) (int64, error) {
	k, err := t.s.kind(q.Kind)
	if err != nil {
		return 0, err
	}
	var sq *bun.SelectQuery
	if k.typed {
		sq = t.tx.NewSelect().Model(reflect.New(k.typ).Interface())
	} else {
		sq = t.tx.NewSelect().Model((*docRow)(nil))
	}
	sq, none, err := t.feed(sq, k, q)
	if err != nil || none {
		return 0, err
	}
	if q.Limit > 0 {
		var n int64
		inner := sq.ColumnExpr("1").Limit(int64(q.Limit))
		if err := t.tx.NewSelect().ColumnExpr("count(*)").TableExpr("(?) AS capped", inner).Scan(ctx, &n); err != nil {
			return 0, t.dbErr("count changes", err)
		}
		return n, nil
	}
	n, err := sq.Count(ctx)
	if err != nil {
		return 0, t.dbErr("count changes", err)
	}
	return int64(n), nil
}

// feed restricts sq to the rows of q's feed: the kind, after the cursor,
// within the scope filter. none reports a filter that admits nothing.
func (t *Tx) feed(sq *bun.SelectQuery, k *kindInfo, q core.ChangesQuery) (_ *bun.SelectQuery, none bool, _ error) {
	if q.Filter != nil && !goodField(q.Filter.Field) {
		return nil, false, fmt.Errorf("%w: scope filter field %q", core.ErrInvalid, q.Filter.Field)
	}
	if !k.typed {
		sq = sq.Where("kind = ?", q.Kind)
	}
	if !q.After.IsZero() {
		u := q.After.UpdatedAt.UnixMicro()
		if q.After.UpdatedAt.IsZero() {
			u = 0
		}
		sq = sq.Where("(? > ? OR (? = ? AND ? > ?))",
			bun.Ident("updated_at"), u, bun.Ident("updated_at"), u, bun.Ident("id"), q.After.ID)
	}
	if q.Filter == nil {
		return sq, false, nil
	}
	if len(q.Filter.Values) == 0 {
		return nil, true, nil
	}
	if !k.typed {
		return sq.Where("? IN (?)", t.s.d.JSONField("data", q.Filter.Field), bun.In(q.Filter.Values)), false, nil
	}
	col, ok := k.columns[q.Filter.Field]
	if !ok {
		return nil, false, fmt.Errorf("%w: kind %q has no field %q to filter on", core.ErrInvalid, q.Kind, q.Filter.Field)
	}
	return sq.Where("? IN (?)", bun.Ident(col), bun.In(q.Filter.Values)), false, nil
}

// idemRow is a row of offsync_idempotency as idemSelect reads it. The
// answered record is kept in columns, as given (its kind, id and data may
// be empty: the authority leaves out what a re-sent request tells it); a
// NULL updated_at is no record. Legacy holds the whole record as JSON on
// rows written before migration 3, which have no record columns.
type idemRow struct {
	Principal   string
	OpID        string
	RequestHash string
	Status      int
	CreatedAt   int64
	Kind, ID    sql.NullString
	UpdatedAt   sql.NullInt64
	DeletedAt   sql.NullInt64
	EditedAt    sql.NullInt64
	Data        sql.NullString
	Legacy      sql.NullString
}

func (r *idemRow) scan(rows interface{ Scan(...any) error }) error {
	return rows.Scan(&r.Principal, &r.OpID, &r.RequestHash, &r.Status, &r.CreatedAt,
		&r.Kind, &r.ID, &r.UpdatedAt, &r.DeletedAt, &r.EditedAt, &r.Data, &r.Legacy)
}

// record returns the idempotency record the row holds.
func (r *idemRow) record() (core.IdempotencyRecord, error) {
	out := core.IdempotencyRecord{Principal: r.Principal, OpID: r.OpID, RequestHash: r.RequestHash,
		Status: core.PushStatus(r.Status), CreatedAt: fromMicro(r.CreatedAt)}
	switch {
	case r.Legacy.Valid:
		rec, err := decodeRecord(r.Legacy)
		if err != nil {
			return out, err
		}
		out.Record = rec
	case r.UpdatedAt.Valid:
		rec := &core.Record{Kind: r.Kind.String, ID: r.ID.String, UpdatedAt: fromMicro(r.UpdatedAt.Int64),
			DeletedAt: fromMicro(r.DeletedAt.Int64), EditedAt: fromMicro(r.EditedAt.Int64)}
		if r.Data.Valid {
			rec.Data = json.RawMessage(r.Data.String)
		}
		out.Record = rec
	}
	return out, nil
}

// idemArgs appends the values of idemColumns for r.
func idemArgs(args []any, r *core.IdempotencyRecord) []any {
	args = append(args, r.Principal, r.OpID, r.RequestHash, int64(r.Status), micro(r.CreatedAt))
	rec := r.Record
	if rec == nil {
		return append(args, nil, nil, nil, nil, nil, nil)
	}
	var data any
	if rec.Data != nil {
		data = string(rec.Data)
	}
	return append(args, rec.Kind, rec.ID, micro(rec.UpdatedAt), micro(rec.DeletedAt), micro(rec.EditedAt), data)
}

// Idempotent implements core.AuthorityTx.
func (t *Tx) Idempotent(ctx context.Context, principal, opID string) (core.IdempotencyRecord, error) {
	recs, err := t.IdempotentMany(ctx, principal, []string{opID})
	if err != nil {
		return core.IdempotencyRecord{}, err
	}
	rec, ok := recs[opID]
	if !ok {
		return core.IdempotencyRecord{}, fmt.Errorf("idempotency record %q: %w", opID, core.ErrNotFound)
	}
	return rec, nil
}

// PutIdempotent implements core.AuthorityTx (insert or replace).
func (t *Tx) PutIdempotent(ctx context.Context, r core.IdempotencyRecord) error {
	return t.PutIdempotentMany(ctx, []core.IdempotencyRecord{r})
}

// PurgeIdempotent implements core.AuthorityTx.
func (t *Tx) PurgeIdempotent(ctx context.Context, before time.Time) (int64, error) {
	res, err := t.tx.NewRaw("DELETE FROM offsync_idempotency WHERE created_at < ?", micro(before)).Exec(ctx)
	if err != nil {
		return 0, t.dbErr("purge idempotency", err)
	}
	n, err := res.RowsAffected()
	return n, t.dbErr("purge idempotency", err)
}

// micro is t in microseconds since the epoch; the zero time is 0.
func micro(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicro inverts micro.
func fromMicro(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// recordJSON is how a record is kept in a system table's JSON column.
type recordJSON struct {
	Kind      string          `json:"kind"`
	ID        string          `json:"id"`
	UpdatedAt int64           `json:"updated_at,omitempty"`
	DeletedAt int64           `json:"deleted_at,omitempty"`
	EditedAt  int64           `json:"edited_at,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// encodeRecord returns nil (SQL NULL) for a nil record.
func encodeRecord(r *core.Record) (any, error) {
	if r == nil {
		return nil, nil
	}
	b, err := json.Marshal(recordJSON{Kind: r.Kind, ID: r.ID, UpdatedAt: micro(r.UpdatedAt),
		DeletedAt: micro(r.DeletedAt), EditedAt: micro(r.EditedAt), Data: r.Data})
	if err != nil {
		return nil, fmt.Errorf("%w: record %s/%s: %v", core.ErrInvalid, r.Kind, r.ID, err)
	}
	return string(b), nil
}

func decodeRecord(s sql.NullString) (*core.Record, error) {
	if !s.Valid {
		return nil, nil
	}
	var j recordJSON
	if err := json.Unmarshal([]byte(s.String), &j); err != nil {
		return nil, fmt.Errorf("offsync: stored record is corrupt: %w", errors.Join(core.ErrInvalid, err))
	}
	return &core.Record{Kind: j.Kind, ID: j.ID, UpdatedAt: fromMicro(j.UpdatedAt), DeletedAt: fromMicro(j.DeletedAt),
		EditedAt: fromMicro(j.EditedAt), Data: j.Data}, nil
}

// goodField reports whether a filter field name is safe to hand to a
// dialect's JSON extraction: not empty, no quotes, backslashes or control
// characters.
func goodField(f string) bool {
	if f == "" {
		return false
	}
	for _, r := range f {
		if r < 0x20 || r == '"' || r == '\\' || r == '\'' || r == 0x7f {
			return false
		}
	}
	return true
}
