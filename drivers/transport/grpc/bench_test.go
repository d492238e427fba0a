package grpc_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	ogrpc "github.com/offsync/offsync/drivers/transport/grpc"
	"github.com/offsync/offsync/server"
)

// benchSizes are the rows of the push and pull benchmarks: 10,000 and
// 100,000, or a tenth with -short.
func benchSizes() (push, pull int) {
	if testing.Short() {
		return 1_000, 10_000
	}
	return 10_000, 100_000
}

// benchOps are n upserts of small documents to kind.
func benchOps(kind string, n int) []core.Op {
	ops := make([]core.Op, n)
	for i := range ops {
		ops[i] = core.Op{OpID: fmt.Sprintf("%s-%d", kind, i), Kind: kind, ID: fmt.Sprintf("id-%07d", i), Type: core.OpUpsert,
			Payload: []byte(fmt.Sprintf(`{"title":"todo number %d","done":%v,"tags":["a","b"],"n":%d}`, i, i%2 == 0, i))}
	}
	return ops
}

// BenchmarkPush10k pushes 10,000 ops per iteration through the client
// (split under the server's max_batch) to a SQLite authority behind the
// server half on loopback; each iteration writes a fresh kind.
func BenchmarkPush10k(b *testing.B) {
	n, _ := benchSizes()
	svc := newAuthority(b, nil)
	r := serve(b, svc, server.TransportConfig{})
	c := dial(b, r.addr, "", nil)
	ctx := context.Background()
	iter := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		iter++
		ops := benchOps(fmt.Sprintf("push%d", iter), n)
		b.StartTimer()
		res, err := c.Push(ctx, ops)
		if err != nil || len(res) != n || res[n-1].Status != core.StatusApplied {
			b.Fatalf("push: %v", err)
		}
	}
	b.ReportMetric(float64(iter*n)/b.Elapsed().Seconds(), "ops/s")
}

// pullBenchClient returns a client of an authority holding n records of
// kind "pull" (100,000 unless the sizes are scaled down).
func pullBenchClient(b *testing.B) (*ogrpc.Client, int) {
	b.Helper()
	_, n := benchSizes()
	svc := newAuthority(b, nil)
	actx := core.WithPrincipal(context.Background(), core.Principal{})
	ops := benchOps("pull", n)
	for i := 0; i < n; i += 1000 {
		if _, err := svc.Push(actx, ops[i:min(i+1000, n)]); err != nil {
			b.Fatal(err)
		}
	}
	r := serve(b, svc, server.TransportConfig{})
	c := dial(b, r.addr, "", nil)
	return c, n
}

// BenchmarkPull100k walks a kind of 100,000 records in pages of 1,000
// from a SQLite authority behind the server half on loopback.
func BenchmarkPull100k(b *testing.B) {
	c, n := pullBenchClient(b)
	ctx := context.Background()
	rows := 0
	b.ResetTimer()
	for b.Loop() {
		req := core.PullRequest{Kind: "pull", Limit: 1000}
		got := 0
		for {
			p, err := c.Pull(ctx, req)
			if err != nil {
				b.Fatal(err)
			}
			got += len(p.Records)
			if p.NextPageToken == "" {
				break
			}
			req.PageToken = p.NextPageToken
		}
		if got != n {
			b.Fatalf("walked %d rows, want %d", got, n)
		}
		rows += got
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkNoticeLatency measures the time from a one-op push to the
// authority (its commit included) to the notice arriving through a
// Subscribe stream on loopback (p50 and p99 reported).
func BenchmarkNoticeLatency(b *testing.B) {
	svc := newAuthority(b, nil)
	r := serve(b, svc, server.TransportConfig{})
	c := dial(b, r.addr, "", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Subscribe(ctx, []string{"rt"})
	if err != nil {
		b.Fatal(err)
	}
	actx := core.WithPrincipal(ctx, core.Principal{})
	var lat []time.Duration
	i := 0
	for b.Loop() {
		i++
		op := core.Op{OpID: fmt.Sprint("rt-", i), Kind: "rt", ID: fmt.Sprint(i), Type: core.OpUpsert, Payload: []byte(`{"n":1}`)}
		start := time.Now()
		res, err := svc.Push(actx, []core.Op{op})
		if err != nil || res[0].Status != core.StatusApplied {
			b.Fatal(err)
		}
		for n := range ch {
			if n.ID == op.ID {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPullPages100k walks the same kind as BenchmarkPull100k, in
// pages of 1,000, over one PullPages stream per walk.
func BenchmarkPullPages100k(b *testing.B) {
	c, n := pullBenchClient(b)
	ctx := context.Background()
	rows := 0
	for b.Loop() {
		got := 0
		err := c.PullPages(ctx, core.PullRequest{Kind: "pull", Limit: 1000}, func(p core.Page) error {
			got += len(p.Records)
			return nil
		})
		if err != nil || got != n {
			b.Fatalf("walked %d rows, %v; want %d", got, err, n)
		}
		rows += got
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "records/s")
}
