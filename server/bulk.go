package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/offsync/offsync/core"
)

// pushBulk answers a batch with the store's bulk methods: inside one
// savepoint, one IdempotentMany for the batch's op ids and one GetMany per
// kind, then every op decided in memory in order (runBatch with a bulkTx),
// then one PutMany per kind and one PutIdempotentMany. It needs a
// transaction that is a core.BatchTx and no Validate hook (a hook may write
// through ctx, which only a savepoint per op can undo for the ops it
// refuses).
//
// Any error rolls the savepoint back and is returned: the caller then
// answers the whole batch op by op in the same transaction, which answers
// each failing op on its own (a record the typed model cannot hold is
// Rejected, a store failure on one op is Retry). The versions stamped by the
// failed attempt are never committed: the fallback stamps its own (never
// older ones), and the AfterStamp hook sees those ops twice. The reads are
// inside the savepoint too, so that a failed read (on Postgres, a failed
// statement outside a savepoint aborts the transaction) also falls back.
func (s *Service) pushBulk(ctx context.Context, tx core.Tx, bt core.BatchTx, p core.Principal,
	ops []core.Op, plans []opPlan) (results []core.PushResult, notices map[string]core.Notice, err error) {
	err = tx.Savepoint(ctx, func(ctx context.Context) error {
		b := &bulkTx{s: s, p: p}
		if err := b.load(ctx, bt, ops, plans); err != nil {
			return err
		}
		var err error
		if results, notices, err = s.runBatch(ctx, b, tx, p, ops, plans); err != nil {
			return err
		}
		return b.flush(ctx, bt)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bulk: %w", err)
	}
	return results, notices, nil
}

// bulkTx is the in-memory rowAccess of pushBulk. It holds the batch's
// records and idempotency records as they stand, updated after each applied
// op, so that a later op of the batch sees what an earlier one did as it
// would read it back from the store, and the writes to make at the end.
type bulkTx struct {
	s *Service
	p core.Principal

	rows      map[recKey]*core.Record           // the batch's records; nil = missing
	freshRows map[recKey]bool                   // rows written by the batch, not yet in stored form
	keys      map[string]core.IdempotencyRecord // the caller's records of the batch's op ids

	puts    map[string][]core.Record // per kind, in op order
	putKeys []core.IdempotencyRecord
}

// load reads, for the ops that reach the transaction, the caller's
// idempotency records of their op ids and their records, one query per kind.
func (b *bulkTx) load(ctx context.Context, bt core.BatchTx, ops []core.Op, plans []opPlan) error {
	var opIDs []string
	ids := map[string][]string{}
	b.rows = make(map[recKey]*core.Record, len(ops))
	for i, op := range ops {
		if plans[i].final != nil {
			continue
		}
		if op.OpID != "" {
			opIDs = append(opIDs, op.OpID)
		}
		key := recKey{op.Kind, op.ID}
		if _, ok := b.rows[key]; !ok {
			b.rows[key] = nil
			ids[op.Kind] = append(ids[op.Kind], op.ID)
		}
	}
	b.keys = map[string]core.IdempotencyRecord{}
	if len(opIDs) > 0 {
		keys, err := bt.IdempotentMany(ctx, b.p.ID, opIDs)
		if err != nil {
			return fmt.Errorf("idempotency lookup: %w", err)
		}
		b.keys = keys
	}
	kinds := make([]string, 0, len(ids))
	for k := range ids {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, kind := range kinds {
		got, err := bt.GetMany(ctx, kind, ids[kind])
		if err != nil {
			return fmt.Errorf("read %s: %w", kind, err)
		}
		for id, rec := range got {
			if key := (recKey{kind, id}); b.rows[key] == nil {
				if _, asked := b.rows[key]; asked {
					r := rec
					b.rows[key] = &r
				}
			}
		}
	}
	// Sized for every op to write: growing them op by op cost more than
	// what a batch's writes allocate otherwise.
	b.freshRows = make(map[recKey]bool, len(b.rows))
	b.puts = make(map[string][]core.Record, len(kinds))
	for _, kind := range kinds {
		b.puts[kind] = make([]core.Record, 0, len(ids[kind]))
	}
	b.putKeys = make([]core.IdempotencyRecord, 0, len(opIDs))
	return nil
}

// idempotent returns the record as the store would: a store keeps an
// idempotency record's fields as they are given.
func (b *bulkTx) idempotent(ctx context.Context, opID string) (core.IdempotencyRecord, bool, error) {
	rec, ok := b.keys[opID]
	return rec, ok, nil
}

func (b *bulkTx) apply(ctx context.Context, op core.Op, pl *opPlan, decide decideFunc) (core.PushResult, bool, error) {
	key := recKey{op.Kind, op.ID}
	cur, ok := b.rows[key]
	if !ok {
		return core.PushResult{}, false, fmt.Errorf("%s/%s was not loaded", op.Kind, op.ID)
	}
	if cur != nil && b.freshRows[key] {
		r, err := b.s.storedRow(*cur)
		if err != nil {
			return core.PushResult{}, false, err
		}
		cur = &r
		b.rows[key] = cur
		delete(b.freshRows, key)
	}
	var current *core.Record
	if cur != nil {
		c := *cur
		current = &c
	}
	res, write, err := decide(ctx, current)
	if err != nil || res.Status != core.StatusApplied {
		return res, false, err
	}
	if write != nil {
		w := *write
		if !b.s.bulkStaleRows {
			b.rows[key] = &w
			b.freshRows[key] = true
		}
		b.puts[op.Kind] = append(b.puts[op.Kind], w)
	}
	if op.OpID != "" {
		r := b.s.idemRecord(b.p, op, pl, res.Record)
		b.keys[op.OpID] = r
		b.putKeys = append(b.putKeys, r)
	}
	return res, write != nil, nil
}

// flush writes the batch's new row versions, one PutMany per kind (in kind
// order), then its idempotency records.
func (b *bulkTx) flush(ctx context.Context, bt core.BatchTx) error {
	kinds := make([]string, 0, len(b.puts))
	for k, recs := range b.puts {
		if len(recs) > 0 {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	for _, kind := range kinds {
		if err := bt.PutMany(ctx, kind, b.puts[kind]); err != nil {
			return fmt.Errorf("write %s: %w", kind, err)
		}
	}
	if len(b.putKeys) > 0 {
		if err := bt.PutIdempotentMany(ctx, b.putKeys); err != nil {
			return fmt.Errorf("record idempotency keys: %w", err)
		}
	}
	return nil
}

// storedRow is rec as the store returns it once written: a typed kind's
// record goes through its model; a document's data is kept trimmed ("{}"
// when empty).
func (s *Service) storedRow(rec core.Record) (core.Record, error) {
	if t := s.tables[rec.Kind]; t != nil && t.Type() != nil {
		m, err := t.FromRecord(rec)
		if err != nil {
			return core.Record{}, err
		}
		return t.ToRecord(m)
	}
	d := bytes.TrimSpace(rec.Data)
	if len(d) == 0 {
		d = []byte("{}")
	}
	rec.Data = json.RawMessage(d)
	return rec, nil
}
