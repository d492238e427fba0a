package bunstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun"
)

// NextVersion implements core.AuthorityTx: after the dialect's per-kind lock
// it returns max(now, last+1µs) and records it.
func (t *Tx) NextVersion(ctx context.Context, kind string, now time.Time) (time.Time, error) {
	if t.readOnly {
		return time.Time{}, fmt.Errorf("%w: NextVersion in a read transaction", core.ErrInvalid)
	}
	if _, err := t.s.kind(kind); err != nil {
		return time.Time{}, err
	}
	last, err := t.s.d.LockVersion(ctx, t.tx, kind)
	if err != nil {
		return time.Time{}, t.dbErr("lock version", err)
	}
	v := core.Micro(now).UnixMicro()
	if v <= last {
		v = last + 1
	}
	if _, err := t.tx.NewRaw(`INSERT INTO offsync_versions (kind, last) VALUES (?, ?)
		ON CONFLICT (kind) DO UPDATE SET last = EXCLUDED.last`, kind, v).Exec(ctx); err != nil {
		return time.Time{}, t.dbErr("record version", err)
	}
	return time.UnixMicro(v).UTC(), nil
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
	if q.Filter != nil && !goodField(q.Filter.Field) {
		return nil, fmt.Errorf("%w: scope filter field %q", core.ErrInvalid, q.Filter.Field)
	}
	after := func(sq *bun.SelectQuery) *bun.SelectQuery {
		if q.After.IsZero() {
			return sq
		}
		u := q.After.UpdatedAt.UnixMicro()
		if q.After.UpdatedAt.IsZero() {
			u = 0
		}
		return sq.Where("(? > ? OR (? = ? AND ? > ?))",
			bun.Ident("updated_at"), u, bun.Ident("updated_at"), u, bun.Ident("id"), q.After.ID)
	}
	if !k.typed {
		var rows []docRow
		sq := t.tx.NewSelect().Model(&rows).Where("kind = ?", q.Kind)
		sq = after(sq)
		if q.Filter != nil {
			if len(q.Filter.Values) == 0 {
				return nil, nil
			}
			sq = sq.Where("? IN (?)", t.s.d.JSONField("data", q.Filter.Field), bun.In(q.Filter.Values))
		}
		sq = sq.Order("updated_at", "id")
		if q.Limit > 0 {
			sq = sq.Limit(int64(q.Limit))
		}
		if err := sq.Scan(ctx); err != nil {
			return nil, t.dbErr("changes", err)
		}
		out := make([]core.Record, len(rows))
		for i := range rows {
			out[i] = rows[i].record()
		}
		return out, nil
	}
	slice := reflect.New(reflect.SliceOf(k.typ))
	sq := t.tx.NewSelect().Model(slice.Interface())
	sq = after(sq)
	if q.Filter != nil {
		col, ok := k.columns[q.Filter.Field]
		if !ok {
			return nil, fmt.Errorf("%w: kind %q has no field %q to filter on", core.ErrInvalid, q.Kind, q.Filter.Field)
		}
		if len(q.Filter.Values) == 0 {
			return nil, nil
		}
		sq = sq.Where("? IN (?)", bun.Ident(col), bun.In(q.Filter.Values))
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

// idemRow is a row of offsync_idempotency.
type idemRow struct {
	Principal   string         `bun:"principal"`
	OpID        string         `bun:"op_id"`
	RequestHash string         `bun:"request_hash"`
	Status      int            `bun:"status"`
	Record      sql.NullString `bun:"record"`
	CreatedAt   int64          `bun:"created_at"`
}

// Idempotent implements core.AuthorityTx.
func (t *Tx) Idempotent(ctx context.Context, principal, opID string) (core.IdempotencyRecord, error) {
	var rows []idemRow
	if err := t.tx.NewRaw(`SELECT principal, op_id, request_hash, status, record, created_at
		FROM offsync_idempotency WHERE principal = ? AND op_id = ?`, principal, opID).Scan(ctx, &rows); err != nil {
		return core.IdempotencyRecord{}, t.dbErr("idempotency", err)
	}
	if len(rows) == 0 {
		return core.IdempotencyRecord{}, fmt.Errorf("idempotency record %q: %w", opID, core.ErrNotFound)
	}
	r := rows[0]
	rec, err := decodeRecord(r.Record)
	if err != nil {
		return core.IdempotencyRecord{}, err
	}
	return core.IdempotencyRecord{Principal: r.Principal, OpID: r.OpID, RequestHash: r.RequestHash,
		Status: core.PushStatus(r.Status), Record: rec, CreatedAt: fromMicro(r.CreatedAt)}, nil
}

// PutIdempotent implements core.AuthorityTx (insert or replace).
func (t *Tx) PutIdempotent(ctx context.Context, r core.IdempotencyRecord) error {
	if r.OpID == "" {
		return fmt.Errorf("%w: idempotency record without an op id", core.ErrInvalid)
	}
	rec, err := encodeRecord(r.Record)
	if err != nil {
		return err
	}
	_, err = t.tx.NewRaw(`INSERT INTO offsync_idempotency (principal, op_id, request_hash, status, record, created_at)
		VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (principal, op_id) DO UPDATE SET request_hash = EXCLUDED.request_hash,
			status = EXCLUDED.status, record = EXCLUDED.record, created_at = EXCLUDED.created_at`,
		r.Principal, r.OpID, r.RequestHash, int(r.Status), rec, micro(r.CreatedAt)).Exec(ctx)
	return t.dbErr("put idempotency", err)
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
