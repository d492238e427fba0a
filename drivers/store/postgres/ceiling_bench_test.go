package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/postgres"
	"github.com/offsync/offsync/internal/pgtest"
	"github.com/offsync/offsync/server"
)

// BenchmarkKindWriteCeiling measures the per-kind write ceiling: every
// write of a kind takes the kind's version row lock until it commits, so
// writes of one kind are serialized whatever the number of writers or
// instances. Writers (1 or 16) push single-op batches (one transaction
// each) through server.Push, spread over 1 or 8 kinds; ops/s is the
// throughput. 16 writers on one kind do no better than one writer: that is
// the ceiling of one kind; over 8 kinds they do. The serializable case runs
// every write transaction at SERIALIZABLE: writers waiting for a kind's lock
// fail when its holder commits and are retried (retries/op).
//
//	go test -run '^$' -bench KindWriteCeiling -benchtime 1000x ./drivers/store/postgres
func BenchmarkKindWriteCeiling(b *testing.B) {
	for _, c := range []struct {
		name         string
		writers      int
		kinds        int
		serializable bool
	}{
		{"writers=1/kinds=1", 1, 1, false},
		{"writers=16/kinds=1", 16, 1, false},
		{"writers=16/kinds=8", 16, 8, false},
		{"writers=16/kinds=1/serializable", 16, 1, true},
		{"writers=16/kinds=8/serializable", 16, 8, true},
	} {
		writers := c.writers
		b.Run(c.name, func(b *testing.B) {
			dsn := pgtest.New(b)
			if c.serializable {
				dsn = serializableDSN(dsn)
			}
			st, err := postgres.Open(context.Background(), dsn, &postgres.Options{MaxOpenConns: writers + 4})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			tables := make([]core.Table, c.kinds)
			for i := range tables {
				tables[i] = core.Documents(fmt.Sprintf("k%d", i))
			}
			svc, err := server.New(context.Background(), st, &server.Options{Tables: tables})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			retries0 := st.Retries()
			b.ResetTimer()
			for range writers {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						kind := fmt.Sprintf("k%d", i%int64(c.kinds))
						res, err := svc.Push(context.Background(), []core.Op{{OpID: fmt.Sprint(i), Kind: kind, ID: fmt.Sprint(i),
							Type: core.OpUpsert, Payload: []byte(`{"n":1}`)}})
						if err == nil && res[0].Status != core.StatusApplied {
							err = fmt.Errorf("op %d: %v %s", i, res[0].Status, res[0].Reason)
						}
						if err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric(float64(st.Retries()-retries0)/float64(b.N), "retries/op")
			b.ReportMetric(0, "ns/op")
		})
	}
}
