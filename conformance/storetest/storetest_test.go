package storetest_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/offsync/offsync/conformance/storetest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
)

// plainStore is a real SQLite store whose transactions hide every method
// beyond core.Tx, so they are not a core.BatchTx.
type plainStore struct{ core.Store }

type plainTx struct{ core.Tx }

func (s plainStore) Update(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	return s.Store.Update(ctx, func(ctx context.Context, tx core.Tx) error { return fn(ctx, plainTx{tx}) })
}

func (s plainStore) View(ctx context.Context, fn func(ctx context.Context, tx core.Tx) error) error {
	return s.Store.View(ctx, func(ctx context.Context, tx core.Tx) error { return fn(ctx, plainTx{tx}) })
}

type plainHarness struct{}

func (plainHarness) NewStore(t *testing.T) core.Store {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return plainStore{s}
}

// TestBatchTestsSkipWithoutBatchTx: the batch tests skip a store whose
// transactions are not core.BatchTx, and one-row tests still run on it.
func TestBatchTestsSkipWithoutBatchTx(t *testing.T) {
	if _, ok := any(plainTx{}).(core.BatchTx); ok {
		t.Fatal("plainTx is a core.BatchTx")
	}
	batch := map[string]func(*testing.T, storetest.Harness){
		"GetMany":           storetest.TestBatchGetMany,
		"PutMany":           storetest.TestBatchPutMany,
		"PutManyLarge":      storetest.TestBatchPutManyLarge,
		"PutManyBadData":    storetest.TestBatchPutManyBadData,
		"SettleMany":        storetest.TestBatchSettleMany,
		"SettleManyLarge":   storetest.TestBatchSettleManyLarge,
		"PendingIDs":        storetest.TestBatchPendingIDs,
		"DeleteOps":         storetest.TestBatchDeleteOps,
		"SetOpState":        storetest.TestBatchSetOpState,
		"IdempotentMany":    storetest.TestBatchIdempotentMany,
		"PutIdempotentMany": storetest.TestBatchPutIdempotentMany,
	}
	for name, fn := range batch {
		var inner *testing.T
		t.Run(name, func(t *testing.T) {
			inner = t
			fn(t, plainHarness{})
		})
		if !inner.Skipped() {
			t.Errorf("%s ran on a store without core.BatchTx", name)
		}
	}
	var inner *testing.T
	t.Run("PutGetRoundTrip", func(t *testing.T) {
		inner = t
		storetest.TestPutGetRoundTrip(t, plainHarness{})
	})
	if inner.Skipped() || inner.Failed() {
		t.Errorf("a one-row test did not pass on a store without core.BatchTx")
	}
}
