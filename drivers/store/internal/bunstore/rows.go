package bunstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/jsonscan"
	"github.com/uptrace/bun"
)

// docRow is a row of offsync_documents.
type docRow struct {
	bun.BaseModel `bun:"table:offsync_documents"`

	Kind           string         `bun:"kind,pk"`
	ID             string         `bun:"id,pk"`
	UpdatedAt      core.Timestamp `bun:"updated_at,nullzero"`
	DeletedAt      core.Timestamp `bun:"deleted_at,nullzero"`
	EditedAt       core.Timestamp `bun:"edited_at,nullzero"`
	DeletedAtLocal core.Timestamp `bun:"deleted_at_local,nullzero"`
	Data           string         `bun:"data"`
}

func (r *docRow) record() core.Record {
	return core.Record{
		Kind:      r.Kind,
		ID:        r.ID,
		UpdatedAt: r.UpdatedAt.Time,
		DeletedAt: r.DeletedAt.Time,
		EditedAt:  r.EditedAt.Time,
		Data:      json.RawMessage(r.Data),
	}
}

// docData checks a document's data and returns it as stored: a JSON object
// ("{}" when empty).
func docData(rec core.Record) (string, error) {
	d := bytes.TrimSpace(rec.Data)
	if len(d) == 0 {
		return "{}", nil
	}
	if d[0] != '{' || !jsonscan.Valid(d) {
		return "", fmt.Errorf("%w: record %s/%s: data must be a JSON object", core.ErrInvalid, rec.Kind, rec.ID)
	}
	return string(d), nil
}

func checkRecord(kind string, rec *core.Record) error {
	if rec.ID == "" {
		return fmt.Errorf("%w: record of kind %q without an id", core.ErrInvalid, kind)
	}
	if rec.Kind == "" {
		rec.Kind = kind
	} else if rec.Kind != kind {
		return fmt.Errorf("%w: record %s/%s given for kind %q", core.ErrInvalid, rec.Kind, rec.ID, kind)
	}
	return nil
}

// Get implements core.RowTx.
func (t *Tx) Get(ctx context.Context, kind, id string) (core.Record, error) {
	k, err := t.s.kind(kind)
	if err != nil {
		return core.Record{}, err
	}
	if err := t.lockForRead(ctx, kind); err != nil {
		return core.Record{}, err
	}
	if !k.typed {
		var row docRow
		err := t.tx.NewSelect().Model(&row).Where("kind = ? AND id = ?", kind, id).Limit(1).Scan(ctx)
		if errors.Is(err, sql.ErrNoRows) {
			return core.Record{}, fmt.Errorf("%s/%s: %w", kind, id, core.ErrNotFound)
		}
		if err != nil {
			return core.Record{}, t.dbErr("get", err)
		}
		return row.record(), nil
	}
	return t.getTyped(ctx, k, id)
}

// Put implements core.RowTx: an upsert that keeps local-only columns.
func (t *Tx) Put(ctx context.Context, rec core.Record) error {
	return t.putMany(ctx, rec.Kind, []core.Record{rec}, false)
}

// checkObject refuses data that is present and not a JSON object.
func checkObject(rec core.Record) error {
	d := bytes.TrimSpace(rec.Data)
	if len(d) > 0 && d[0] != '{' {
		return fmt.Errorf("%w: record %s/%s: data must be a JSON object", core.ErrInvalid, rec.Kind, rec.ID)
	}
	return nil
}

func (t *Tx) upsertDocs(ctx context.Context, rows []docRow, settle bool) error {
	set := "updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at, edited_at = EXCLUDED.edited_at, data = EXCLUDED.data"
	if settle {
		set += ", deleted_at_local = EXCLUDED.deleted_at_local"
	}
	max := t.s.d.MaxRowsPerStatement()
	for len(rows) > 0 {
		n := min(len(rows), max)
		chunk := rows[:n]
		rows = rows[n:]
		_, err := t.tx.NewInsert().Model(&chunk).
			On("CONFLICT (kind, id) DO UPDATE").
			Set(set).
			Returning("NULL").
			Exec(ctx)
		if err != nil {
			return t.dbErr("upsert documents", err)
		}
	}
	return nil
}

// List implements core.RowTx.
func (t *Tx) List(ctx context.Context, kind string, opts core.ListOptions) ([]core.Record, error) {
	k, err := t.s.kind(kind)
	if err != nil {
		return nil, err
	}
	if opts.Limit < 0 {
		return nil, fmt.Errorf("%w: negative limit", core.ErrInvalid)
	}
	if !k.typed {
		var rows []docRow
		q := t.tx.NewSelect().Model(&rows).Where("kind = ?", kind)
		if opts.AfterID != "" {
			q = q.Where("id > ?", opts.AfterID)
		}
		if !opts.IncludeDeleted {
			q = q.Where("deleted_at IS NULL AND deleted_at_local IS NULL")
		}
		q = q.Order("id")
		if opts.Limit > 0 {
			q = q.Limit(int64(opts.Limit))
		}
		if err := q.Scan(ctx); err != nil {
			return nil, t.dbErr("list", err)
		}
		out := make([]core.Record, len(rows))
		for i := range rows {
			out[i] = rows[i].record()
		}
		return out, nil
	}
	slice := reflect.New(reflect.SliceOf(k.typ))
	q := t.tx.NewSelect().Model(slice.Interface())
	if opts.AfterID != "" {
		q = q.Where("? > ?", bun.Ident("id"), opts.AfterID)
	}
	if !opts.IncludeDeleted {
		q = q.Where("? IS NULL AND ? IS NULL", bun.Ident("deleted_at"), bun.Ident("deleted_at_local"))
	}
	q = q.OrderExpr("? ASC", bun.Ident("id"))
	if opts.Limit > 0 {
		q = q.Limit(int64(opts.Limit))
	}
	if err := q.Scan(ctx); err != nil {
		return nil, t.dbErr("list", err)
	}
	return k.records(slice.Elem())
}

func (k *kindInfo) records(slice reflect.Value) ([]core.Record, error) {
	out := make([]core.Record, slice.Len())
	for i := range out {
		rec, err := k.table.ToRecord(slice.Index(i).Addr().Interface())
		if err != nil {
			return nil, err
		}
		out[i] = rec
	}
	return out, nil
}

// Remove implements core.ReplicaTx; a missing row is not an error.
func (t *Tx) Remove(ctx context.Context, kind, id string) error {
	k, err := t.s.kind(kind)
	if err != nil {
		return err
	}
	if !k.typed {
		_, err = t.tx.NewRaw("DELETE FROM offsync_documents WHERE kind = ? AND id = ?", kind, id).Exec(ctx)
	} else {
		_, err = t.tx.NewRaw("DELETE FROM ? WHERE id = ?", k.ident, id).Exec(ctx)
	}
	return t.dbErr("remove", err)
}

// MarkDeletedLocal implements core.ReplicaTx; a missing row is ErrNotFound.
func (t *Tx) MarkDeletedLocal(ctx context.Context, kind, id string, at time.Time) error {
	k, err := t.s.kind(kind)
	if err != nil {
		return err
	}
	var res sql.Result
	if !k.typed {
		res, err = t.tx.NewRaw("UPDATE offsync_documents SET deleted_at_local = ? WHERE kind = ? AND id = ?",
			core.TimestampOf(at), kind, id).Exec(ctx)
	} else {
		res, err = t.tx.NewRaw("UPDATE ? SET deleted_at_local = ? WHERE id = ?", k.ident, core.TimestampOf(at), id).Exec(ctx)
	}
	if err != nil {
		return t.dbErr("mark deleted", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("mark deleted %s/%s: %w", kind, id, core.ErrNotFound)
	}
	return nil
}

// ClearKind implements core.ReplicaTx.
func (t *Tx) ClearKind(ctx context.Context, kind string) (int, error) {
	k, err := t.s.kind(kind)
	if err != nil {
		return 0, err
	}
	var res sql.Result
	if !k.typed {
		res, err = t.tx.NewRaw(`DELETE FROM offsync_documents WHERE kind = ?
			AND id NOT IN (SELECT id FROM offsync_outbox WHERE kind = ?)`, kind, kind).Exec(ctx)
	} else {
		res, err = t.tx.NewRaw(`DELETE FROM ? WHERE id NOT IN (SELECT id FROM offsync_outbox WHERE kind = ?)`,
			k.ident, kind).Exec(ctx)
	}
	if err != nil {
		return 0, t.dbErr("clear kind", err)
	}
	n, err := res.RowsAffected()
	return int(n), t.dbErr("clear kind", err)
}

// pendingIDs returns which of ids have ops in the outbox.
func (t *Tx) pendingIDs(ctx context.Context, kind string, ids []string) (map[string]bool, error) {
	some := false
	if err := t.queryStrings(ctx, t.s.sys.anyPending, []any{kind}, func(string) { some = true }); err != nil {
		return nil, t.dbErr("outbox lookup", err)
	}
	if !some {
		return nil, nil
	}
	pending := map[string]bool{}
	err := eachBatch(ids, t.s.sys.pending, []any{kind}, func(q string, args []any) error {
		return t.dbErr("outbox lookup", t.queryStrings(ctx, q, args, func(id string) { pending[id] = true }))
	})
	if err != nil {
		return nil, err
	}
	return pending, nil
}

// ApplyPage implements core.ReplicaTx: pulled records are upserted in
// multi-row statements, except those with ops in the outbox (Kept); local
// columns are never written for existing rows. When an id appears twice in
// recs the later record wins.
func (t *Tx) ApplyPage(ctx context.Context, kind string, recs []core.Record) (core.ApplyResult, error) {
	var res core.ApplyResult
	k, err := t.s.kind(kind)
	if err != nil {
		return res, err
	}
	if len(recs) == 0 {
		return res, nil
	}
	ids := make([]string, len(recs))
	last := make(map[string]int, len(recs))
	for i := range recs {
		r := &recs[i]
		if r.ID == "" || (r.Kind != "" && r.Kind != kind) {
			rc := *r
			if err := checkRecord(kind, &rc); err != nil {
				return res, err
			}
		}
		ids[i] = r.ID
		last[r.ID] = i
	}
	pending, err := t.pendingIDs(ctx, kind, ids)
	if err != nil {
		return res, err
	}
	keep := func(i int) bool {
		r := &recs[i]
		if last[r.ID] != i {
			return false
		}
		if pending[r.ID] {
			res.Kept++
			return false
		}
		if r.Deleted() {
			res.Deletes++
		} else {
			res.Upserts++
		}
		return true
	}
	if err := t.upsertRows(ctx, k, recs, keep, false); err != nil {
		return core.ApplyResult{}, err
	}
	return res, nil
}
