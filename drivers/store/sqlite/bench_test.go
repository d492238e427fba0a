package sqlite_test

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

const (
	benchRows = 100_000
	benchPage = 1000 // rows per pulled page, one transaction each
)

func benchRecords(b *testing.B) []core.Record {
	b.Helper()
	recs := make([]core.Record, benchRows)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range recs {
		d, err := json.Marshal(map[string]any{"title": fmt.Sprintf("title of row %d", i), "owner": "owner-" + fmt.Sprint(i%50),
			"count": i, "done": i%2 == 0})
		if err != nil {
			b.Fatal(err)
		}
		recs[i] = core.Record{Kind: storetest.ItemKind, ID: fmt.Sprintf("id-%08d", i), UpdatedAt: t0.Add(time.Duration(i) * time.Microsecond), Data: d}
	}
	return recs
}

func benchStore(b *testing.B) *sqlite.Store {
	b.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Register(context.Background(), storetest.Tables()...); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkApplyPage applies 100k pulled typed records in pages of 1000,
// each in its own transaction, as an initial pull does (with one pending op
// in the outbox, so the pending-row check runs).
func BenchmarkApplyPage(b *testing.B) {
	recs := benchRecords(b)
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		s := benchStore(b)
		err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			return tx.Enqueue(ctx, &core.Op{OpID: "op", Kind: storetest.ItemKind, ID: "id-00000500", Type: core.OpDelete})
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := 0; i < len(recs); i += benchPage {
			page := recs[i:min(i+benchPage, len(recs))]
			err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
				_, err := tx.ApplyPage(ctx, storetest.ItemKind, page)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkBulkInsert is the baseline: the same rows, already models,
// inserted with plain bun multi-row INSERTs of 1000 rows, one transaction
// each.
func BenchmarkBulkInsert(b *testing.B) {
	recs := benchRecords(b)
	items := make([]storetest.Item, len(recs))
	for i, r := range recs {
		m, err := storetest.Items.Model(r)
		if err != nil {
			b.Fatal(err)
		}
		items[i] = *m
	}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		s := benchStore(b)
		b.StartTimer()
		for i := 0; i < len(items); i += benchPage {
			page := items[i:min(i+benchPage, len(items))]
			tx, err := s.DB().BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tx.NewInsert().Model(&page).Returning("NULL").Exec(ctx); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
