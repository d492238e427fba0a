package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/postgres"
	"github.com/offsync/offsync/internal/pgtest"
)

type benchTodo struct {
	ID    string `bun:"id,pk" json:"id"`
	Title string `json:"title"`
	Done  bool   `json:"done"`
	Owner string `json:"owner"`
	core.SyncColumns
}

func benchStore(b *testing.B) *postgres.Store {
	dsn := pgtest.New(b)
	s, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Register(context.Background(), core.NewTable[benchTodo]("todo"), core.Documents("doc")); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkApplyPage applies pages of 1000 pulled records (rows/s reported).
func BenchmarkApplyPage(b *testing.B) {
	for _, kind := range []string{"todo", "doc"} {
		b.Run(kind, func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			const page = 1000
			base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
			recs := make([]core.Record, page)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range recs {
					n := (i*page + j) % 20000
					recs[j] = core.Record{Kind: kind, ID: fmt.Sprintf("id-%06d", n),
						UpdatedAt: base.Add(time.Duration(i*page+j) * time.Microsecond),
						Data:      []byte(fmt.Sprintf(`{"title":"task %d","done":false,"owner":"u%d"}`, n, n%7))}
				}
				if err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
					_, err := tx.ApplyPage(ctx, kind, recs)
					return err
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*page)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkNextVersionPut is the authority's write path: one record per
// transaction, version then upsert.
func BenchmarkNextVersionPut(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			v, err := tx.NextVersion(ctx, "todo", time.Now())
			if err != nil {
				return err
			}
			return tx.Put(ctx, core.Record{Kind: "todo", ID: fmt.Sprintf("id-%d", i%1000), UpdatedAt: v,
				Data: []byte(`{"title":"x","done":true,"owner":"u1"}`)})
		}); err != nil {
			b.Fatal(err)
		}
	}
}
