package server_test

import (
	"context"
	"fmt"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"path/filepath"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// BenchmarkPullFirstPageScoped measures the first page of a scoped walk over
// 26,000 visible rows, the page that also tells how many rows remain: the
// count is what costs. cpu-ns/op is the process's CPU time per pull, steadier
// than ns/op on a shared machine.
func BenchmarkPullFirstPageScoped(b *testing.B) {
	ctx := context.Background()
	st := newStoreB(b)
	svc, err := server.New(ctx, st, &server.Options{
		Tables:       []core.Table{core.Documents("note")},
		MaxBatch:     1000,
		Authenticate: func(ctx context.Context, tok string) (core.Principal, error) { return core.Principal{ID: tok}, nil },
		Scope: func(ctx context.Context, p core.Principal, kind string) (*core.Filter, error) {
			return &core.Filter{Field: "owner", Values: []string{p.ID}}, nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	pctx := core.WithPrincipal(ctx, core.Principal{ID: "alice"})
	const rows = 26000
	for i := 0; i < rows; i += 1000 {
		ops := make([]core.Op, 0, 1000)
		for j := i; j < i+1000; j++ {
			ops = append(ops, core.Op{OpID: fmt.Sprint("o", j), Kind: "note", ID: fmt.Sprintf("n%06d", j),
				Type: core.OpUpsert, Payload: []byte(`{"title":"a note of a usual size, with a few words in it","done":false,"n":42}`)})
		}
		res, err := svc.Push(pctx, ops)
		if err != nil || res[0].Status != core.StatusApplied {
			b.Fatalf("seed: %v %+v", err, res[0])
		}
	}
	first, err := svc.Pull(pctx, core.PullRequest{Kind: "note", Limit: 500})
	if err != nil {
		b.Fatal(err)
	}
	// first: the walk's first page, which counts what follows; next: its
	// second page, which carries the count (or its bound) in the token.
	for _, c := range []struct {
		name string
		req  core.PullRequest
	}{
		{"first", core.PullRequest{Kind: "note", Limit: 500}},
		{"next", core.PullRequest{Kind: "note", Limit: 500, PageToken: first.NextPageToken}},
	} {
		b.Run(c.name, func(b *testing.B) {
			c0 := cpuTime()
			for b.Loop() {
				page, err := svc.Pull(pctx, c.req)
				if err != nil || len(page.Records) != 500 {
					b.Fatalf("pull: %d records, %v", len(page.Records), err)
				}
			}
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

func newStoreB(b *testing.B) *sqlite.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "authority.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return st
}
