package core_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
	"github.com/uptrace/bun"
)

// Item is the benchmark record: about 215 bytes of business data.
type Item struct {
	bun.BaseModel `bun:"table:items"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Body          string `json:"body"`
	Count         int    `json:"count"`
	Done          bool   `json:"done"`
	core.SyncColumns
}

var items = core.NewTable[Item]("item")

func benchItem(i int) *Item {
	return &Item{
		ID:    fmt.Sprintf("item-%08d", i),
		Title: fmt.Sprintf("Item number %d of the benchmark data set", i),
		Body:  strings.Repeat("lorem ipsum dolor sit amet ", 5)[:120],
		Count: i, Done: i%2 == 0,
	}
}

// BenchmarkLocalWrite compares Writer.Insert (row + outbox op) with a raw bun
// insert of the same row, one row per transaction, SQLite in WAL with
// synchronous=NORMAL.
func BenchmarkLocalWrite(b *testing.B) {
	ctx := context.Background()
	b.Run("raw_bun_insert", func(b *testing.B) {
		st := openStore(b, "raw.db")
		if err := st.Register(ctx, items); err != nil {
			b.Fatal(err)
		}
		db := st.DB()
		b.ResetTimer()
		for i := range b.N {
			err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := tx.NewInsert().Model(benchItem(i)).Returning("NULL").Exec(ctx)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("writer_insert", func(b *testing.B) {
		st := openStore(b, "writer.db")
		eng, err := core.NewEngine(ctx, st, newAuthority(b, nil), &core.Options{Tables: []core.Table{items}})
		if err != nil {
			b.Fatal(err)
		}
		w := core.WriterFor(eng, items)
		b.ResetTimer()
		for i := range b.N {
			if err := w.Insert(ctx, benchItem(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkLocalWritePaired alternates one raw bun insert and one
// Writer.Insert per iteration, so both see the same machine load, and
// reports the ratio writer/raw (target: at least 0.5).
func BenchmarkLocalWritePaired(b *testing.B) {
	ctx := context.Background()
	raw := openStore(b, "raw.db")
	if err := raw.Register(ctx, items); err != nil {
		b.Fatal(err)
	}
	eng, err := core.NewEngine(ctx, openStore(b, "writer.db"), newAuthority(b, nil), &core.Options{Tables: []core.Table{items}})
	if err != nil {
		b.Fatal(err)
	}
	w := core.WriterFor(eng, items)
	var rawTime, writerTime time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		err := raw.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewInsert().Model(benchItem(i)).Returning("NULL").Exec(ctx)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		mid := time.Now()
		if err := w.Insert(ctx, benchItem(i)); err != nil {
			b.Fatal(err)
		}
		rawTime += mid.Sub(start)
		writerTime += time.Since(mid)
	}
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw_rows/s")
	b.ReportMetric(float64(b.N)/writerTime.Seconds(), "writer_rows/s")
	b.ReportMetric(rawTime.Seconds()/writerTime.Seconds(), "ratio")
}

const pullRows = 100_000

var (
	seedOnce sync.Once
	seedDir  string
	seedErr  error
)

// seededAuthority returns a SQLite authority file holding pullRows items,
// made once per test binary.
func seededAuthority(b *testing.B) string {
	seedOnce.Do(func() {
		ctx := context.Background()
		dir, err := tempDir()
		if err != nil {
			seedErr = err
			return
		}
		seedDir = dir
		st, err := sqlite.Open(ctx, filepath.Join(dir, "auth.db"), nil)
		if err != nil {
			seedErr = err
			return
		}
		defer st.Close()
		if seedErr = st.Register(ctx, items); seedErr != nil {
			return
		}
		for start := 0; start < pullRows; start += 10_000 {
			seedErr = st.Update(ctx, func(ctx context.Context, tx core.Tx) error {
				for i := start; i < start+10_000; i++ {
					rec, err := items.Record(benchItem(i))
					if err != nil {
						return err
					}
					if rec.UpdatedAt, err = tx.NextVersion(ctx, "item", t0); err != nil {
						return err
					}
					if err := tx.Put(ctx, rec); err != nil {
						return err
					}
				}
				return nil
			})
			if seedErr != nil {
				return
			}
		}
	})
	if seedErr != nil {
		b.Fatal(seedErr)
	}
	return filepath.Join(seedDir, "auth.db")
}

// BenchmarkInitialPull pulls pullRows records in-process from an authority
// into a fresh replica, against a plain bun bulk insert of the same rows in
// pages of the same size.
func BenchmarkInitialPull(b *testing.B) {
	ctx := context.Background()
	path := seededAuthority(b)
	b.Run("bulk_insert_limit", func(b *testing.B) {
		rows := make([]*Item, pullRows)
		for i := range rows {
			rows[i] = benchItem(i)
			rows[i].UpdatedAt = core.TimestampOf(t0)
		}
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			st := openStore(b, "bulk.db")
			if err := st.Register(ctx, items); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			for start := 0; start < pullRows; start += 500 {
				page := rows[start:min(start+500, pullRows)]
				err := st.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					_, err := tx.NewInsert().Model(&page).Returning("NULL").Exec(ctx)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N*pullRows)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("engine_pull", func(b *testing.B) {
		auth, err := sqlite.Open(ctx, path, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer auth.Close()
		svc, err := server.New(ctx, auth, &server.Options{Tables: []core.Table{items}})
		if err != nil {
			b.Fatal(err)
		}
		defer svc.Close()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			st := openStore(b, "replica.db")
			eng, err := core.NewEngine(ctx, st, svc, &core.Options{Tables: []core.Table{items}, PageSize: 500})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			stats, err := eng.Sync(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if stats.Pulled != pullRows {
				b.Fatalf("pulled %d", stats.Pulled)
			}
		}
		b.ReportMetric(float64(b.N*pullRows)/b.Elapsed().Seconds(), "rows/s")
	})
}
