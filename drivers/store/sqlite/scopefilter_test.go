package sqlite_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// A stored document SQLite's JSON functions cannot parse (here nested 1100
// levels, past their 1000) must not break the scoped feed of its kind: it
// is left out of filtered pages and counts, and the other rows are served.
func TestScopeFilterSurvivesUnparsableDocument(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	if err := s.Register(ctx, core.Documents("note")); err != nil {
		t.Fatal(err)
	}
	deep := `{"owner":"a","x":` + strings.Repeat("[", 1100) + strings.Repeat("]", 1100) + `}`
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []core.Record{
		{Kind: "note", ID: "a1", UpdatedAt: t0, Data: []byte(`{"owner":"a"}`)},
		{Kind: "note", ID: "deep", UpdatedAt: t0.Add(time.Microsecond), Data: []byte(deep)},
		{Kind: "note", ID: "b1", UpdatedAt: t0.Add(2 * time.Microsecond), Data: []byte(`{"owner":"b"}`)},
		{Kind: "note", ID: "a2", UpdatedAt: t0.Add(3 * time.Microsecond), Data: []byte(`{"owner":"a"}`)},
	}
	err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		for _, r := range recs {
			if err := tx.Put(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The control: the row really is one json_extract refuses.
	var v []string
	if err := s.DB().NewRaw(`SELECT json_extract(data, '$.owner') FROM offsync_documents WHERE id = 'deep'`).Scan(ctx, &v); err == nil {
		t.Fatalf("json_extract read the 1100-level document (%v): the test no longer covers what it claims", v)
	}
	q := core.ChangesQuery{Kind: "note", Filter: &core.Filter{Field: "owner", Values: []string{"a"}}}
	err = s.View(ctx, func(ctx context.Context, tx core.Tx) error {
		got, err := tx.Changes(ctx, q)
		if err != nil {
			return err
		}
		var ids []string
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		if strings.Join(ids, ",") != "a1,a2" {
			t.Errorf("scoped feed = %v, want a1,a2", ids)
		}
		c := tx.(interface {
			CountChanges(context.Context, core.ChangesQuery) (int64, error)
		})
		for _, limit := range []int{0, 1, 10} {
			q.Limit = limit
			n, err := c.CountChanges(ctx, q)
			if err != nil {
				return err
			}
			want := int64(2)
			if limit == 1 {
				want = 1
			}
			if n != want {
				t.Errorf("CountChanges with limit %d = %d, want %d", limit, n, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scoped feed with an unparsable row: %v", err)
	}
}
