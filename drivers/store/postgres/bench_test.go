package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/postgres"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/internal/pgtest"
	"github.com/offsync/offsync/server"
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

// Item is the authority benchmark's record, the same as core's benchmarks
// use: about 215 bytes of business data.
type Item struct {
	bun.BaseModel `bun:"table:items"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Body          string `json:"body"`
	Count         int    `json:"count"`
	Done          bool   `json:"done"`
	core.SyncColumns
}

var benchItems = core.NewTable[Item]("item")

// itemOp is the op creating item i.
func itemOp(b testing.TB, i int) core.Op {
	rec, err := benchItems.Record(&Item{
		ID:    fmt.Sprintf("item-%08d", i),
		Title: fmt.Sprintf("Item number %d of the benchmark data set", i),
		Body:  strings.Repeat("lorem ipsum dolor sit amet ", 5)[:120],
		Count: i, Done: i%2 == 0,
	})
	if err != nil {
		b.Fatal(err)
	}
	return core.Op{OpID: fmt.Sprintf("op-%08d", i), Kind: "item", ID: rec.ID, Type: core.OpUpsert, Payload: rec.Data}
}

// benchAuthorities are the two authorities compared: a Service over a
// Postgres database and one over a SQLite file (WAL, the driver's defaults).
func benchAuthorities(b *testing.B) []struct {
	name string
	svc  *server.Service
} {
	ctx := context.Background()
	pg, err := postgres.Open(ctx, pgtest.New(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.Close() })
	lite, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "authority.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { lite.Close() })
	var out []struct {
		name string
		svc  *server.Service
	}
	for _, st := range []struct {
		name  string
		store core.Store
	}{{"postgres", pg}, {"sqlite", lite}} {
		svc, err := server.New(ctx, st.store, &server.Options{Tables: []core.Table{benchItems}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { svc.Close() })
		out = append(out, struct {
			name string
			svc  *server.Service
		}{st.name, svc})
	}
	return out
}

const benchBatch = 500

// pushBatch pushes items [first, first+benchBatch) as one batch.
func pushBatch(b *testing.B, svc *server.Service, first int) {
	ops := make([]core.Op, benchBatch)
	for j := range ops {
		ops[j] = itemOp(b, first+j)
	}
	res, err := svc.Push(context.Background(), ops)
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range res {
		if r.Status != core.StatusApplied {
			b.Fatalf("op %s: %v %s", r.OpID, r.Status, r.Reason)
		}
	}
}

// pullSeed is how many items the pull benchmark pages through.
const pullSeed = 20_000

// BenchmarkAuthority measures the authority's throughput on Postgres beside
// SQLite. Each iteration does the same step on both, timed apart, so both
// see the same machine load, and reports pg_rows/s, sqlite_rows/s and
// ratio = pg/sqlite:
//
//   - push: one server.Push of a batch of 500 new items (with op ids, so
//     idempotency records are written too);
//   - pull: one server.Pull page of 500 over a feed of 20,000 items, walked
//     with page tokens and started over at its end.
func BenchmarkAuthority(b *testing.B) {
	auths := benchAuthorities(b)
	pg, lite := auths[0].svc, auths[1].svc
	report := func(b *testing.B, rows int, pgTime, liteTime time.Duration) {
		b.ReportMetric(float64(rows)/pgTime.Seconds(), "pg_rows/s")
		b.ReportMetric(float64(rows)/liteTime.Seconds(), "sqlite_rows/s")
		b.ReportMetric(liteTime.Seconds()/pgTime.Seconds(), "ratio")
	}
	n := pullSeed // the pull seed takes items [0, pullSeed)
	b.Run("push", func(b *testing.B) {
		var pgTime, liteTime time.Duration
		rows := 0
		for b.Loop() {
			start := time.Now()
			pushBatch(b, pg, n)
			mid := time.Now()
			pushBatch(b, lite, n)
			pgTime += mid.Sub(start)
			liteTime += time.Since(mid)
			n += benchBatch
			rows += benchBatch
		}
		report(b, rows, pgTime, liteTime)
	})
	for _, a := range auths {
		for first := 0; first < pullSeed; first += benchBatch {
			pushBatch(b, a.svc, first)
		}
	}
	b.Run("pull", func(b *testing.B) {
		ctx := context.Background()
		var pgTime, liteTime time.Duration
		rows := 0
		pgReq := core.PullRequest{Kind: "item", Limit: benchBatch}
		liteReq := pgReq
		pull := func(svc *server.Service, req *core.PullRequest) int {
			page, err := svc.Pull(ctx, *req)
			if err != nil {
				b.Fatal(err)
			}
			if len(page.Records) == 0 {
				b.Fatal("empty page")
			}
			req.PageToken = page.NextPageToken
			return len(page.Records)
		}
		for b.Loop() {
			start := time.Now()
			got := pull(pg, &pgReq)
			mid := time.Now()
			if pull(lite, &liteReq) != got {
				b.Fatal("the two feeds differ")
			}
			pgTime += mid.Sub(start)
			liteTime += time.Since(mid)
			rows += got
		}
		report(b, rows, pgTime, liteTime)
	})
}
