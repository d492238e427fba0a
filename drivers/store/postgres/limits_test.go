package postgres_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/pgtest"
	"github.com/offsync/offsync/server"
)

// The store's side of the authority's limits on Postgres: a scoped walk ends
// its pages at the byte budget and counts what remains within its cap, a
// dynamic kind is not registered by reads, and a page's rows stop at the
// budget in the store.
func TestLimitsOnPostgres(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.New(t)
	svc := newInstance(t, dsn, server.Options{
		Clock:        &tickClock{},
		Tables:       []core.Table{core.Documents("note")},
		DynamicKinds: regexp.MustCompile(`^doc_`),
		MaxPageBytes: 2500,
		Scope: func(ctx context.Context, p core.Principal, kind string) (*core.Filter, error) {
			if kind != "note" {
				return nil, nil
			}
			return &core.Filter{Field: "owner", Values: []string{"a"}}, nil
		},
	})
	ops := make([]core.Op, 60)
	for i := range ops {
		ops[i] = core.Op{OpID: fmt.Sprint("o", i), Kind: "note", ID: fmt.Sprintf("n%02d", i), Type: core.OpUpsert,
			Payload: []byte(fmt.Sprintf(`{"text":%q}`, strings.Repeat("x", 1000)))}
	}
	res, err := svc.Push(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != core.StatusApplied {
			t.Fatalf("op %s: %s %s", r.OpID, r.Status, r.Reason)
		}
	}
	var ids []string
	req := core.PullRequest{Kind: "note", Limit: 2}
	for pages := 0; ; pages++ {
		p, err := svc.Pull(ctx, req)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(p.Records) > 2 {
			t.Fatalf("page %d: %d records of 1 KB over a 2500-byte budget", pages, len(p.Records))
		}
		if pages == 0 && p.Remaining != -1 {
			t.Errorf("the first page of 60 rows by 2 says %d remain, want -1 (the count stops at 21)", p.Remaining)
		}
		for _, r := range p.Records {
			ids = append(ids, r.ID)
		}
		if p.Remaining >= 0 && p.Remaining != int64(60-len(ids)) {
			t.Errorf("after %d rows the page says %d remain", len(ids), p.Remaining)
		}
		if p.NextPageToken == "" {
			break
		}
		req.PageToken = p.NextPageToken
	}
	if len(ids) != 60 || !slices.IsSorted(ids) {
		t.Fatalf("the walk saw %d records: %v", len(ids), ids)
	}

	if p, err := svc.Pull(ctx, core.PullRequest{Kind: "doc_new"}); err != nil || len(p.Records) != 0 || p.NextPageToken != "" {
		t.Fatalf("pull of a dynamic kind without rows: %+v, %v", p, err)
	}
	st := open(t, dsn)
	for _, tb := range st.Kinds() {
		if tb.Kind() == "doc_new" {
			t.Fatal("a read registered doc_new")
		}
	}
	err = st.View(ctx, func(ctx context.Context, tx core.Tx) error {
		probe := tx.(interface {
			HasDocuments(context.Context, string) (bool, error)
		})
		if ok, err := probe.HasDocuments(ctx, "note"); err != nil || !ok {
			t.Errorf("HasDocuments(note) = %v, %v", ok, err)
		}
		if ok, err := probe.HasDocuments(ctx, "doc_new"); err != nil || ok {
			t.Errorf("HasDocuments(doc_new) = %v, %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
