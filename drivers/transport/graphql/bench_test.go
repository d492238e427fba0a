package graphql_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// benchOps returns n upserts of distinct records, tagged so that two
// rounds never touch the same ids.
func benchOps(round, n int) []core.Op {
	ops := make([]core.Op, n)
	for i := range ops {
		id := fmt.Sprintf("r%d-%07d", round, i)
		ops[i] = core.Op{OpID: "op-" + id, Kind: "todo", ID: id, Type: core.OpUpsert,
			Payload: json.RawMessage(fmt.Sprintf(`{"title":"todo number %d","done":%t,"tags":["a","b"],"n":%d}`, i, i%2 == 0, i))}
	}
	return ops
}

// seed writes n records straight into the authority.
func seed(b *testing.B, svc *server.Service, n int) {
	ctx := context.Background()
	ops := benchOps(0, n)
	for start := 0; start < n; start += 1000 {
		res, err := svc.Push(ctx, ops[start:min(start+1000, n)])
		if err != nil || res[0].Status != core.StatusApplied {
			b.Fatalf("seed: %v", err)
		}
	}
}

// BenchmarkPull100k walks a kind of 100,000 records (pages of 1000) from a
// SQLite authority through the GraphQL half on loopback and the client.
// Run with -benchtime 3x; the figure is records/s.
func BenchmarkPull100k(b *testing.B) {
	const n = 100_000
	svc := newAuthority(b, nil)
	seed(b, svc, n)
	l := serve(b, svc)
	c := newClient(b, l.URL(), nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got := 0
		req := core.PullRequest{Kind: "todo", Limit: 1000}
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
			b.Fatalf("pulled %d records, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPush10k pushes 10,000 new records (batches of the authority's
// 1000) through the client and the GraphQL half into a SQLite authority.
// The figure is ops/s.
func BenchmarkPush10k(b *testing.B) {
	const n = 10_000
	svc := newAuthority(b, nil)
	l := serve(b, svc)
	c := newClient(b, l.URL(), nil)
	ctx := context.Background()
	round := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		round++
		res, err := c.Push(ctx, benchOps(round, n))
		if err != nil || len(res) != n || res[n-1].Status != core.StatusApplied {
			b.Fatalf("push: %d results, %v", len(res), err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "ops/s")
}
