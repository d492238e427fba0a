package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// UpdateOption qualifies an update.
type UpdateOption func(*updateConfig)

type updateConfig struct{ changed []string }

// Changed names the business fields the user changed (by JSON name); autoPreserve
// overwrites only those on a conflict. Without it every field counts as changed.
func Changed(fields ...string) UpdateOption {
	return func(c *updateConfig) { c.changed = append(c.changed, fields...) }
}

func changedOf(opts []UpdateOption) []string {
	var c updateConfig
	for _, o := range opts {
		o(&c)
	}
	return c.changed
}

// Writer writes rows of a typed table: the local row and its outbox op commit
// in one transaction (guarantee G1, docs/guarantees.md). The base version of an update comes from
// the stored row, never from the caller's struct (guarantee G5).
type Writer[T any] struct {
	e *Engine
	t *TypedTable[T]
}

// WriterFor returns the writer of a typed table the engine syncs.
func WriterFor[T any](e *Engine, t *TypedTable[T]) *Writer[T] { return &Writer[T]{e: e, t: t} }

func (w *Writer[T]) run(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	if err := w.e.begin(); err != nil {
		return err
	}
	defer w.e.running.Done()
	if err := w.e.Update(ctx, fn); err != nil {
		return err
	}
	w.e.checkpoint("after_local_commit")
	return nil
}

// Insert writes m and enqueues its upsert; an existing row (a tombstone
// included) is replaced and re-created.
func (w *Writer[T]) Insert(ctx context.Context, m *T) error {
	return w.run(ctx, func(ctx context.Context, tx Tx) error { return w.InsertTx(ctx, tx, m) })
}

// InsertTx is Insert inside the caller's transaction.
func (w *Writer[T]) InsertTx(ctx context.Context, tx Tx, m *T) error {
	rec, err := w.record(m)
	if err != nil {
		return err
	}
	return w.e.upsert(ctx, tx, w.t, rec, nil, false)
}

// Update writes m over its existing row and enqueues the change; Changed
// names the fields the user changed.
func (w *Writer[T]) Update(ctx context.Context, m *T, opts ...UpdateOption) error {
	return w.run(ctx, func(ctx context.Context, tx Tx) error { return w.UpdateTx(ctx, tx, m, opts...) })
}

// UpdateTx is Update inside the caller's transaction.
func (w *Writer[T]) UpdateTx(ctx context.Context, tx Tx, m *T, opts ...UpdateOption) error {
	rec, err := w.record(m)
	if err != nil {
		return err
	}
	changed := changedOf(opts)
	if changed == nil && len(opts) > 0 {
		changed = []string{}
	}
	return w.e.upsert(ctx, tx, w.t, rec, changed, true)
}

// UpdateDiff writes after and enqueues the change with the changed fields
// computed from before; when nothing changed it writes nothing.
func (w *Writer[T]) UpdateDiff(ctx context.Context, before, after *T) error {
	return w.run(ctx, func(ctx context.Context, tx Tx) error { return w.UpdateDiffTx(ctx, tx, before, after) })
}

// UpdateDiffTx is UpdateDiff inside the caller's transaction.
func (w *Writer[T]) UpdateDiffTx(ctx context.Context, tx Tx, before, after *T) error {
	b, err := w.record(before)
	if err != nil {
		return err
	}
	a, err := w.record(after)
	if err != nil {
		return err
	}
	if a.ID != b.ID {
		return fmt.Errorf("%w: UpdateDiff of two records (%q, %q)", ErrInvalid, b.ID, a.ID)
	}
	changed, err := DiffFields(b.Data, a.Data)
	if err != nil {
		return err
	}
	if len(changed) == 0 {
		return nil
	}
	return w.e.upsert(ctx, tx, w.t, a, changed, true)
}

// Delete deletes the row id locally and enqueues the delete.
func (w *Writer[T]) Delete(ctx context.Context, id string) error {
	return w.run(ctx, func(ctx context.Context, tx Tx) error { return w.DeleteTx(ctx, tx, id) })
}

// DeleteTx is Delete inside the caller's transaction.
func (w *Writer[T]) DeleteTx(ctx context.Context, tx Tx, id string) error {
	return w.e.remove(ctx, tx, w.t.Kind(), id)
}

func (w *Writer[T]) record(m *T) (Record, error) {
	if _, ok := w.e.tables[w.t.Kind()]; !ok {
		return Record{}, fmt.Errorf("%w: %q is not a table of this engine", ErrUnknownKind, w.t.Kind())
	}
	if m == nil {
		return Record{}, fmt.Errorf("%w: nil model", ErrInvalid)
	}
	return w.t.Record(m)
}

// DocWriter writes rows of a document table.
type DocWriter struct {
	e *Engine
	d *DocumentTable
}

// DocsFor returns the writer of a document table the engine syncs.
func DocsFor(e *Engine, d *DocumentTable) *DocWriter { return &DocWriter{e: e, d: d} }

func (w *DocWriter) run(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	if _, ok := w.e.tables[w.d.Kind()]; !ok {
		return fmt.Errorf("%w: %q is not a table of this engine", ErrUnknownKind, w.d.Kind())
	}
	if err := w.e.begin(); err != nil {
		return err
	}
	defer w.e.running.Done()
	if err := w.e.Update(ctx, fn); err != nil {
		return err
	}
	w.e.checkpoint("after_local_commit")
	return nil
}

// Put writes the document id with the given business fields and enqueues
// the upsert. Changed names the fields the user changed (default: all).
func (w *DocWriter) Put(ctx context.Context, id string, data map[string]any, opts ...UpdateOption) error {
	return w.run(ctx, func(ctx context.Context, tx Tx) error { return w.PutTx(ctx, tx, id, data, opts...) })
}

// PutTx is Put inside the caller's transaction.
func (w *DocWriter) PutTx(ctx context.Context, tx Tx, id string, data map[string]any, opts ...UpdateOption) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("%w: document %s/%s: %v", ErrInvalid, w.d.Kind(), id, err)
	}
	if data == nil {
		raw = []byte("{}")
	}
	changed := changedOf(opts)
	if changed == nil && len(opts) > 0 {
		changed = []string{}
	}
	return w.e.upsert(ctx, tx, w.d, Record{Kind: w.d.Kind(), ID: id, Data: raw}, changed, false)
}

// PutRaw is Put with the business fields as a JSON object.
func (w *DocWriter) PutRaw(ctx context.Context, id string, data json.RawMessage, opts ...UpdateOption) error {
	changed := changedOf(opts)
	if changed == nil && len(opts) > 0 {
		changed = []string{}
	}
	return w.run(ctx, func(ctx context.Context, tx Tx) error {
		return w.e.upsert(ctx, tx, w.d, Record{Kind: w.d.Kind(), ID: id, Data: data}, changed, false)
	})
}

// Delete deletes the document id locally and enqueues the delete.
func (w *DocWriter) Delete(ctx context.Context, id string) error {
	return w.run(ctx, func(ctx context.Context, tx Tx) error { return w.DeleteTx(ctx, tx, id) })
}

// DeleteTx is Delete inside the caller's transaction.
func (w *DocWriter) DeleteTx(ctx context.Context, tx Tx, id string) error {
	return w.e.remove(ctx, tx, w.d.Kind(), id)
}

// coalescible reports whether new edits may merge into op: only ops that
// were never sent, or were answered "not applied" for sure.
func coalescible(op Op) bool {
	return op.State == StatePending || op.State == StateDeferred || op.State == StateDead
}

// upsert writes rec locally and enqueues (or coalesces) its op. changed nil
// means unknown; mustExist refuses a missing row.
func (e *Engine) upsert(ctx context.Context, tx Tx, t Table, rec Record, changed []string, mustExist bool) error {
	if rec.ID == "" {
		return fmt.Errorf("%w: %s record without id", ErrInvalid, t.Kind())
	}
	if err := CheckData(rec.Data); err != nil {
		return fmt.Errorf("%s/%s: %w", t.Kind(), rec.ID, err)
	}
	stored, err := tx.Get(ctx, t.Kind(), rec.ID)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if mustExist && !exists {
		return fmt.Errorf("%w: %s/%s", ErrNotFound, t.Kind(), rec.ID)
	}
	var ops []Op
	if exists {
		// A missing row has no ops: the engine removes a row only
		// when its last op leaves the outbox, so a fresh insert skips the query.
		if ops, err = tx.Ops(ctx, OpFilter{Kind: t.Kind(), ID: rec.ID}); err != nil {
			return err
		}
	}
	now := e.now()
	rec.Kind = t.Kind()
	rec.UpdatedAt = stored.UpdatedAt // the base: the authority's version, never the caller's
	rec.DeletedAt = time.Time{}
	rec.EditedAt = now
	if err := tx.Put(ctx, rec); err != nil {
		return err
	}
	if exists && !mustExist {
		if err := tx.MarkDeletedLocal(ctx, t.Kind(), rec.ID, time.Time{}); err != nil {
			return err
		}
	}
	if n := len(ops); n > 0 && coalescible(ops[n-1]) {
		last := ops[n-1]
		merged := last
		if last.Type == OpUpsert {
			merged.ChangedFields = unionFields(last.ChangedFields, changed)
		} else {
			merged.ChangedFields = nil // a re-create replaces the whole record
		}
		merged.Type, merged.Payload = OpUpsert, rec.Data
		merged.OpID, merged.TxID, merged.EditedAt = newID(), txIDFrom(ctx), now
		merged.SchemaVersion = t.SchemaVersion()
		merged.Force = false
		if last.State == StateDead {
			merged.State, merged.Attempts, merged.LastError, merged.NextAttemptAt = StatePending, 0, "", time.Time{}
		}
		return e.replaceOp(ctx, tx, last, merged, &rec)
	}
	op := Op{
		OpID: newID(), Kind: t.Kind(), ID: rec.ID, Type: OpUpsert, Payload: rec.Data,
		BaseUpdatedAt: stored.UpdatedAt, ChangedFields: slices.Clone(changed),
		EditedAt: now, EnqueuedAt: now, TxID: txIDFrom(ctx), SchemaVersion: t.SchemaVersion(),
		State: StatePending,
	}
	if exists && len(ops) == 0 && !stored.UpdatedAt.IsZero() {
		op.BasePayload = stored.Data // the row is the authority's version: keep it for three-way merges
	} else if exists && len(ops) > 0 {
		// Behind an op already sent: keep the local data this edit started
		// from, so that the rebase onto that op's answer merges the edit
		// into it (settleRow) instead of reverting what the answer brought.
		op.BasePayload = stored.Data
	}
	return tx.Enqueue(ctx, &op)
}

// remove deletes a row locally and enqueues (or coalesces) its delete.
func (e *Engine) remove(ctx context.Context, tx Tx, kind, id string) error {
	stored, err := tx.Get(ctx, kind, id)
	if err != nil {
		return err
	}
	ops, err := tx.Ops(ctx, OpFilter{Kind: kind, ID: id})
	if err != nil {
		return err
	}
	n := len(ops)
	if n > 0 && ops[n-1].Type == OpDelete {
		return nil // already being deleted
	}
	if n == 0 && stored.Deleted() {
		return nil // already a tombstone on the authority
	}
	now := e.now()
	if n > 0 && coalescible(ops[n-1]) {
		last := ops[n-1]
		if n == 1 && last.BaseUpdatedAt.IsZero() && last.State != StateDeferred {
			// A create that never reached the authority, then deleted:
			// nothing to push. If a pull passed over the authority's own
			// version of this id meanwhile, pull it again.
			if err := tx.DeleteOp(ctx, last.OpID); err != nil {
				return err
			}
			if err := rewindToKept(ctx, tx, kind, id); err != nil {
				return err
			}
			return tx.Remove(ctx, kind, id)
		}
		merged := last
		merged.Type, merged.Payload, merged.ChangedFields = OpDelete, nil, nil
		merged.OpID, merged.TxID, merged.EditedAt, merged.Force = newID(), txIDFrom(ctx), now, false
		if last.State == StateDead {
			merged.State, merged.Attempts, merged.LastError, merged.NextAttemptAt = StatePending, 0, "", time.Time{}
		}
		if err := tx.MarkDeletedLocal(ctx, kind, id, now); err != nil {
			return err
		}
		return e.replaceOp(ctx, tx, last, merged, nil)
	}
	if err := tx.MarkDeletedLocal(ctx, kind, id, now); err != nil {
		return err
	}
	op := Op{
		OpID: newID(), Kind: kind, ID: id, Type: OpDelete, BaseUpdatedAt: stored.UpdatedAt,
		EditedAt: now, EnqueuedAt: now, TxID: txIDFrom(ctx), State: StatePending,
	}
	if t, ok := e.tables[kind]; ok {
		op.SchemaVersion = t.SchemaVersion()
	}
	return tx.Enqueue(ctx, &op)
}

// replaceOp coalesces: merged takes last's place in the outbox under a new
// OpID, and a deferred op's inbox entry is refreshed (guarantee G7, docs/guarantees.md).
func (e *Engine) replaceOp(ctx context.Context, tx Tx, last, merged Op, local *Record) error {
	if err := tx.UpdateOp(ctx, last.OpID, merged); err != nil {
		return err
	}
	if last.State != StateDeferred {
		return nil
	}
	entries, err := tx.Conflicts(ctx, ConflictFilter{Kinds: []string{last.Kind}, ID: last.ID})
	if err != nil {
		return err
	}
	for _, en := range entries {
		if en.OpID != last.OpID {
			continue
		}
		if err := tx.DeleteConflict(ctx, last.OpID); err != nil {
			return err
		}
		en.OpID, en.Type, en.Local, en.ChangedFields = merged.OpID, merged.Type, local, merged.ChangedFields
		return tx.PutConflict(ctx, en)
	}
	return nil
}

// DiffFields returns the names of the top-level fields that differ between
// two JSON objects (added, removed or changed), sorted.
func DiffFields(before, after json.RawMessage) ([]string, error) {
	var b, a map[string]json.RawMessage
	if err := json.Unmarshal(before, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := json.Unmarshal(after, &a); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var out []string
	for k, av := range a {
		if bv, ok := b[k]; !ok || !bytes.Equal(bv, av) {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}
