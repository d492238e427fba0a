package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/rest"
)

// pageOf is an authority that serves the same page of n records forever.
type pageOf struct{ page core.Page }

func (p *pageOf) Pull(context.Context, core.PullRequest) (core.Page, error) { return p.page, nil }
func (p *pageOf) Push(_ context.Context, ops []core.Op) ([]core.PushResult, error) {
	out := make([]core.PushResult, len(ops))
	for i, op := range ops {
		rec := core.Record{Kind: op.Kind, ID: op.ID, UpdatedAt: time.Unix(1, 0), Data: op.Payload}
		out[i] = core.PushResult{OpID: op.OpID, Status: core.StatusApplied, Record: &rec}
	}
	return out, nil
}

// BenchmarkPullPage measures one 500-record page through the handler's
// encoder, loopback HTTP and the client's decoder.
func BenchmarkPullPage(b *testing.B) {
	p := &pageOf{page: core.Page{NextPageToken: "next", Remaining: 1000}}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 500 {
		data, _ := json.Marshal(map[string]any{"title": fmt.Sprint("todo number ", i), "done": i%2 == 0,
			"tags": []string{"a", "b"}, "n": i})
		p.page.Records = append(p.page.Records, core.Record{Kind: "todo", ID: fmt.Sprintf("id-%06d", i),
			UpdatedAt: base.Add(time.Duration(i) * time.Microsecond), Data: data})
	}
	srv, _ := serve(b, rest.NewHandler(p, nil))
	c := rest.NewClient(srv.URL, nil)
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

// BenchmarkPushBatch measures a 500-op POST /batch round trip.
func BenchmarkPushBatch(b *testing.B) {
	srv, _ := serve(b, rest.NewHandler(&pageOf{}, nil))
	c := rest.NewClient(srv.URL, nil)
	ops := make([]core.Op, 500)
	for i := range ops {
		ops[i] = upsert(fmt.Sprint("op", i), "todo", fmt.Sprint("id", i), `{"title":"x","done":false,"n":1}`)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Push(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "ops/s")
}
