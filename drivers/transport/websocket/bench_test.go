package websocket_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// The package benchmarks: a replica over a fresh SQLite file pushes 10,000
// local writes, or pulls 100,000 records, through the websocket client and
// half over loopback into (from) a server.Service over SQLite. With -short
// they move a tenth. The cross-transport table is `offsync bench`'s.

const benchKind = "item"

// itemPayload is about 215 bytes of business data, like the bench's Item.
func itemPayload(i int) json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"title": fmt.Sprintf("item number %07d of the benchmark data set", i),
		"body":  "a body of text that stands for what an application keeps beside the title of a record, about one hundred bytes",
		"count": i, "done": i%3 == 0,
	})
	return b
}

func benchAuthority(b *testing.B) *server.Service {
	return newAuthority(b, &server.Options{Tables: []core.Table{core.Documents(benchKind)}})
}

func benchReplica(b *testing.B, tr core.Transport) *core.Engine {
	eng, err := core.NewEngine(context.Background(), newStore(b), tr, &core.Options{Tables: []core.Table{core.Documents(benchKind)}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close() })
	return eng
}

func wsTransport(b *testing.B, svc *server.Service) core.Transport {
	return newClient(b, serve(b, svc, server.Limits{}).url, "", nil)
}

func scaled(n int) int {
	if testing.Short() {
		return n / 10
	}
	return n
}

// BenchmarkPush10k: 10,000 local writes pushed by one Sync.
func BenchmarkPush10k(b *testing.B) { benchPush(b, scaled(10_000), wsTransport) }

// BenchmarkPull100k: 100,000 records pulled by one Sync into a fresh replica.
func BenchmarkPull100k(b *testing.B) { benchPull(b, scaled(100_000), wsTransport) }

func benchPush(b *testing.B, n int, dial func(*testing.B, *server.Service) core.Transport) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		svc := benchAuthority(b)
		eng := benchReplica(b, dial(b, svc))
		docs := core.DocsFor(eng, core.Documents(benchKind))
		err := eng.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			for j := range n {
				if err := docs.PutTx(ctx, tx, fmt.Sprintf("i%07d", j), map[string]any{"raw": json.RawMessage(itemPayload(j))}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := eng.Sync(ctx)
		if err != nil || st.Pushed != n {
			b.Fatalf("sync: pushed %d of %d, %v", st.Pushed, n, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "ops/s")
}

func benchPull(b *testing.B, n int, dial func(*testing.B, *server.Service) core.Transport) {
	ctx := context.Background()
	svc := benchAuthority(b)
	const batch = 1000
	for start := 0; start < n; start += batch {
		ops := make([]core.Op, 0, batch)
		for j := start; j < min(start+batch, n); j++ {
			ops = append(ops, core.Op{OpID: fmt.Sprintf("seed-%d", j), Kind: benchKind, ID: fmt.Sprintf("i%07d", j),
				Type: core.OpUpsert, Payload: itemPayload(j)})
		}
		if _, err := svc.Push(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		eng := benchReplica(b, dial(b, svc))
		b.StartTimer()
		st, err := eng.Sync(ctx)
		if err != nil || st.Pulled != n {
			b.Fatalf("sync: pulled %d of %d, %v", st.Pulled, n, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
}

// pageOf is an authority that serves the same page forever, so that
// BenchmarkPullPage measures the transport alone.
type pageOf struct{ page core.Page }

func (p *pageOf) Pull(context.Context, core.PullRequest) (core.Page, error) { return p.page, nil }
func (p *pageOf) Push(context.Context, []core.Op) ([]core.PushResult, error) {
	return nil, fmt.Errorf("%w: read only", core.ErrRejected)
}

// BenchmarkPullPage measures one 500-record page through the half's
// encoder, the loopback socket and the client's decoder (the same page as
// the REST package's BenchmarkPullPage).
func BenchmarkPullPage(b *testing.B) {
	p := &pageOf{page: core.Page{NextPageToken: "next", Remaining: 1000}}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 500 {
		data, _ := json.Marshal(map[string]any{"title": fmt.Sprint("todo number ", i), "done": i%2 == 0,
			"tags": []string{"a", "b"}, "n": i})
		p.page.Records = append(p.page.Records, core.Record{Kind: "todo", ID: fmt.Sprintf("id-%06d", i),
			UpdatedAt: base.Add(time.Duration(i) * time.Microsecond), Data: data})
	}
	c := newClient(b, serve(b, p, server.Limits{}).url, "", nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		page, err := c.Pull(ctx, core.PullRequest{Kind: "todo", Limit: 500})
		if err != nil || len(page.Records) != 500 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "records/s")
}
