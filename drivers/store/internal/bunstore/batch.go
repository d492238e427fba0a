package bunstore

import (
	"context"
	"fmt"
	"reflect"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun"
)

var _ core.BatchTx = (*Tx)(nil)

// inChunk bounds the ids of one "IN (...)" list.
const inChunk = 500

// chunks calls fn with consecutive pieces of ids of at most inChunk.
func chunks(ids []string, fn func([]string) error) error {
	for len(ids) > 0 {
		n := min(len(ids), inChunk)
		if err := fn(ids[:n]); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// GetMany implements core.BatchTx.
func (t *Tx) GetMany(ctx context.Context, kind string, ids []string) (map[string]core.Record, error) {
	k, err := t.s.kind(kind)
	if err != nil {
		return nil, err
	}
	if err := t.lockForRead(ctx, kind); err != nil {
		return nil, err
	}
	out := make(map[string]core.Record, len(ids))
	err = chunks(ids, func(ids []string) error {
		if !k.typed {
			var rows []docRow
			if err := t.tx.NewSelect().Model(&rows).Where("kind = ? AND id IN (?)", kind, bun.In(ids)).
				Scan(ctx); err != nil {
				return t.dbErr("get many", err)
			}
			for i := range rows {
				out[rows[i].ID] = rows[i].record()
			}
			return nil
		}
		return t.typedIn(ctx, k, ids, func(r core.Record) error {
			out[r.ID] = r
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutMany implements core.BatchTx.
func (t *Tx) PutMany(ctx context.Context, kind string, recs []core.Record) error {
	return t.putMany(ctx, kind, recs, false)
}

// SettleMany implements core.BatchTx.
func (t *Tx) SettleMany(ctx context.Context, kind string, recs []core.Record) error {
	return t.putMany(ctx, kind, recs, true)
}

func (t *Tx) putMany(ctx context.Context, kind string, recs []core.Record, settle bool) error {
	k, err := t.s.kind(kind)
	if err != nil {
		return err
	}
	if t.readOnly {
		return fmt.Errorf("%w: write in a read transaction", core.ErrInvalid)
	}
	last := make(map[string]int, len(recs))
	for i := range recs {
		if err := checkRecord(kind, &recs[i]); err != nil {
			return err
		}
		last[recs[i].ID] = i
	}
	keep := func(i int) bool { return last[recs[i].ID] == i }
	return t.upsertRows(ctx, k, recs, keep, settle)
}

// upsertRows writes the records of k for which keep is true, many per
// statement. With settle, the local deletion mark becomes each record's
// DeletedAt; otherwise local-only columns of existing rows are kept.
func (t *Tx) upsertRows(ctx context.Context, k *kindInfo, recs []core.Record, keep func(int) bool, settle bool) error {
	kind := k.table.Kind()
	if !k.typed {
		rows := make([]docRow, 0, len(recs))
		for i := range recs {
			r := recs[i]
			r.Kind = kind
			data, err := docData(r)
			if err != nil {
				return err
			}
			if !keep(i) {
				continue
			}
			row := docRow{Kind: kind, ID: r.ID, UpdatedAt: core.TimestampOf(r.UpdatedAt),
				DeletedAt: core.TimestampOf(r.DeletedAt), EditedAt: core.TimestampOf(r.EditedAt), Data: data}
			if settle {
				row.DeletedAtLocal = row.DeletedAt
			}
			rows = append(rows, row)
		}
		return t.upsertDocs(ctx, rows, settle)
	}
	if k.rows.writable {
		return t.upsertTyped(ctx, k, recs, keep, settle)
	}
	set := k.updateSet
	if settle {
		set += ", deleted_at_local = EXCLUDED.deleted_at_local"
	}
	max := t.s.d.MaxRowsPerStatement()
	ptrs := reflect.MakeSlice(reflect.SliceOf(reflect.PointerTo(k.typ)), 0, min(len(recs), max))
	flush := func() error {
		if ptrs.Len() == 0 {
			return nil
		}
		sp := reflect.New(ptrs.Type())
		sp.Elem().Set(ptrs)
		_, err := t.tx.NewInsert().Model(sp.Interface()).On("CONFLICT (id) DO UPDATE").Set(set).Returning("NULL").Exec(ctx)
		ptrs = ptrs.Slice(0, 0)
		return t.dbErr("upsert rows", err)
	}
	for i := range recs {
		m, err := t.model(k, recs[i], settle)
		if err != nil {
			return err
		}
		if !keep(i) {
			continue
		}
		ptrs = reflect.Append(ptrs, m)
		if ptrs.Len() >= max {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// model converts rec to a pointer to a new model of k; with settle its local
// deletion mark is set to the record's DeletedAt.
func (t *Tx) model(k *kindInfo, rec core.Record, settle bool) (reflect.Value, error) {
	rec.Kind = k.table.Kind()
	if err := checkObject(rec); err != nil {
		return reflect.Value{}, err
	}
	m, err := k.table.FromRecord(rec)
	if err != nil {
		return reflect.Value{}, err
	}
	v := reflect.ValueOf(m)
	if settle {
		k.rows.local.Value(v.Elem()).Set(reflect.ValueOf(core.TimestampOf(rec.DeletedAt)))
	}
	return v, nil
}

// PendingIDs implements core.BatchTx.
func (t *Tx) PendingIDs(ctx context.Context, kind string, ids []string) (map[string]bool, error) {
	if _, err := t.s.kind(kind); err != nil {
		return nil, err
	}
	p, err := t.pendingIDs(ctx, kind, ids)
	if p == nil && err == nil {
		p = map[string]bool{}
	}
	return p, err
}

// DeleteOps implements core.BatchTx.
func (t *Tx) DeleteOps(ctx context.Context, opIDs []string) error {
	return eachBatch(opIDs, t.s.sys.deleteOps, nil, func(q string, args []any) error {
		_, err := t.exec(ctx, q, args...)
		return t.dbErr("delete ops", err)
	})
}

// SetOpState implements core.BatchTx.
func (t *Tx) SetOpState(ctx context.Context, state core.OpState, opIDs []string) (map[string]bool, error) {
	switch state {
	case core.StatePending, core.StateInFlight, core.StateDeferred, core.StateDead:
	default:
		return nil, fmt.Errorf("%w: unknown op state %q", core.ErrInvalid, state)
	}
	if t.readOnly {
		return nil, fmt.Errorf("%w: write in a read transaction", core.ErrInvalid)
	}
	// Each statement's count of rows set tells whether every op of its
	// piece exists (op ids are unique): then the piece's ids are the
	// answer, and only a piece with some op missing (coalesced since it
	// was read, rare) asks which remain. Reading back every op id set
	// (UPDATE ... RETURNING) cost a row, a string and a map entry per op.
	found := make(map[string]bool, len(opIDs))
	err := eachBatch(opIDs, t.s.sys.setState, []any{string(state)}, func(q string, args []any) error {
		res, err := t.exec(ctx, q, args...)
		if err != nil {
			return t.dbErr("set op state", err)
		}
		ids := args[1:]
		if n, err := res.RowsAffected(); err == nil && n == int64(len(ids)) {
			for _, id := range ids {
				found[id.(string)] = true
			}
			return nil
		}
		return t.dbErr("set op state", t.queryStrings(ctx, t.s.sys.opsIn[len(ids)], ids, func(id string) { found[id] = true }))
	})
	if err != nil {
		return nil, err
	}
	return found, nil
}

// IdempotentMany implements core.BatchTx.
func (t *Tx) IdempotentMany(ctx context.Context, principal string, opIDs []string) (map[string]core.IdempotencyRecord, error) {
	out := make(map[string]core.IdempotencyRecord, len(opIDs))
	err := eachBatch(opIDs, t.s.sys.idemIn, []any{principal}, func(q string, args []any) error {
		rows, err := t.query(ctx, q, args...)
		if err != nil {
			return t.dbErr("idempotency", err)
		}
		defer rows.Close()
		for rows.Next() {
			var r idemRow
			if err := r.scan(rows); err != nil {
				return t.dbErr("idempotency", err)
			}
			rec, err := r.record()
			if err != nil {
				return err
			}
			out[r.OpID] = rec
		}
		return t.dbErr("idempotency", rows.Err())
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutIdempotentMany implements core.BatchTx.
func (t *Tx) PutIdempotentMany(ctx context.Context, recs []core.IdempotencyRecord) error {
	type key struct{ principal, opID string }
	last := make(map[key]int, len(recs))
	for i, r := range recs {
		if r.OpID == "" {
			return fmt.Errorf("%w: idempotency record without an op id", core.ErrInvalid)
		}
		last[key{r.Principal, r.OpID}] = i
	}
	if t.readOnly {
		return fmt.Errorf("%w: write in a read transaction", core.ErrInvalid)
	}
	args := make([]any, 0, 11*min(len(recs), rowBatches[0]))
	kept := make([]int, 0, len(recs))
	for i, r := range recs {
		if last[key{r.Principal, r.OpID}] == i {
			kept = append(kept, i)
		}
	}
	for len(kept) > 0 {
		n := batchSize(len(kept))
		args = args[:0]
		for _, i := range kept[:n] {
			args = idemArgs(args, &recs[i])
		}
		if _, err := t.exec(ctx, t.s.sys.putIdem[n], args...); err != nil {
			return t.dbErr("put idempotency", err)
		}
		kept = kept[n:]
	}
	return nil
}
