package bunstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/storetest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
)

// The replica's share of a push, store by store (SQLite): the narrow
// measures behind BenchmarkPushWire (internal/bench). Each works on an
// outbox of pushOps queued inserts, as `offsync bench`'s push scenario.
//
//	go test ./drivers/store/internal/bunstore -run '^$' -bench 'Push' -benchmem
const (
	pushOps   = 10_000
	pushBatch = 500 // a push batch: core's default BatchSize
)

// pushStore returns a replica store holding pushOps queued inserts of
// storetest's typed kind, their rows written, and the ops' ids.
func pushStore(b *testing.B) (*sqlite.Store, []core.Op) {
	b.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "replica.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Register(ctx, storetest.Tables()...); err != nil {
		b.Fatal(err)
	}
	ops := make([]core.Op, pushOps)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for lo := 0; lo < pushOps; lo += pushBatch {
		err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			for i := lo; i < lo+pushBatch; i++ {
				rec := pushRecord(b, i, time.Time{})
				if err := tx.Put(ctx, rec); err != nil {
					return err
				}
				ops[i] = core.Op{OpID: fmt.Sprintf("op-%08d", i), Kind: storetest.ItemKind, ID: rec.ID,
					Type: core.OpUpsert, Payload: rec.Data, EditedAt: t0, EnqueuedAt: t0, SchemaVersion: 1}
				if err := tx.Enqueue(ctx, &ops[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return s, ops
}

// pushRecord is record i of the outbox, at version updated.
func pushRecord(b *testing.B, i int, updated time.Time) core.Record {
	d, err := json.Marshal(map[string]any{"title": fmt.Sprintf("Item number %d of the benchmark data set", i),
		"owner": "owner-" + fmt.Sprint(i%50), "count": i, "done": i%2 == 0})
	if err != nil {
		b.Fatal(err)
	}
	return core.Record{Kind: storetest.ItemKind, ID: fmt.Sprintf("item-%08d", i), UpdatedAt: updated, Data: d}
}

// BenchmarkPushReadOps reads the outbox of 10,000 ops as a push's heads
// do: a first page of one batch, then pages of eight batches, each in its
// own read transaction.
func BenchmarkPushReadOps(b *testing.B) {
	ctx := context.Background()
	s, _ := pushStore(b)
	var kinds []string // every kind, as the engine's push asks
	for _, t := range storetest.Tables() {
		kinds = append(kinds, t.Kind())
	}
	b.ReportAllocs()
	for b.Loop() {
		var after int64
		n, limit := 0, pushBatch
		for {
			var ops []core.Op
			err := s.View(ctx, func(ctx context.Context, tx core.Tx) error {
				var err error
				ops, err = tx.Ops(ctx, core.OpFilter{Kinds: kinds, AfterSeq: after, Limit: limit})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			n += len(ops)
			if len(ops) < limit {
				break
			}
			after, limit = ops[len(ops)-1].Seq, 8*pushBatch
		}
		if n != pushOps {
			b.Fatalf("read %d ops, want %d", n, pushOps)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*pushOps), "µs/op-read")
}

// BenchmarkPushMarkInFlight marks batches of 500 ops in flight (and, as
// the next iteration, pending again), one transaction each.
func BenchmarkPushMarkInFlight(b *testing.B) {
	ctx := context.Background()
	s, ops := pushStore(b)
	ids := make([]string, pushBatch)
	for i := range ids {
		ids[i] = ops[i].OpID
	}
	states := []core.OpState{core.StateInFlight, core.StatePending}
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			set, err := tx.(core.BatchTx).SetOpState(ctx, states[n%2], ids)
			if err == nil && len(set) != len(ids) {
				err = fmt.Errorf("set %d of %d", len(set), len(ids))
			}
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*pushBatch), "µs/op-marked")
}

// BenchmarkPushSettle settles batches of 500 answered ops as core's
// settler does: delete the ops, look for ops left on their records, write
// the authority's records (here the rows' own data at a new version, as
// for inserts the authority accepted whole).
func BenchmarkPushSettle(b *testing.B) {
	ctx := context.Background()
	s, ops := pushStore(b)
	answers := make([]core.Record, pushOps)
	t1 := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for i := range answers {
		answers[i] = pushRecord(b, i, t1.Add(time.Duration(i)*time.Microsecond))
	}
	lo := 0
	b.ReportAllocs()
	for b.Loop() {
		if lo == pushOps {
			b.StopTimer()
			s, ops = pushStore(b)
			lo = 0
			b.StartTimer()
		}
		batch, recs := ops[lo:lo+pushBatch], answers[lo:lo+pushBatch]
		lo += pushBatch
		err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			bt := tx.(core.BatchTx)
			opIDs := make([]string, len(batch))
			ids := make([]string, len(batch))
			for i, op := range batch {
				opIDs[i], ids[i] = op.OpID, op.ID
			}
			if err := bt.DeleteOps(ctx, opIDs); err != nil {
				return err
			}
			pending, err := bt.PendingIDs(ctx, storetest.ItemKind, ids)
			if err != nil {
				return err
			}
			if len(pending) != 0 {
				return fmt.Errorf("%d records still pending", len(pending))
			}
			return bt.SettleMany(ctx, storetest.ItemKind, recs)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*pushBatch), "µs/op-settled")
}
