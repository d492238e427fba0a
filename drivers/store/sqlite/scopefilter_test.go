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

// ChangesQuery.MaxBytes stops the read once the records cross the budget:
// the store returns the record that crossed it and no more, so a page's
// memory is bounded by its budget rather than its row limit.
func TestChangesStopAtMaxBytes(t *testing.T) {
	ctx := t.Context()
	s := openStore(t)
	if err := s.Register(ctx, core.Documents("note")); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	data := []byte(`{"text":"` + strings.Repeat("x", 988) + `"}`) // 1000 bytes
	err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		for i := range 10 {
			r := core.Record{Kind: "note", ID: "n" + string(rune('0'+i)), UpdatedAt: t0.Add(time.Duration(i) * time.Microsecond), Data: data}
			if err := tx.Put(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each record costs 2+1000+100 = 1102 bytes.
	for _, c := range []struct{ maxBytes, want int }{{0, 10}, {2500, 3}, {1102, 2}, {10, 2}, {1 << 20, 10}} {
		for _, filter := range []*core.Filter{nil, {Field: "text", Values: []string{strings.Repeat("x", 988)}}} {
			err := s.View(ctx, func(ctx context.Context, tx core.Tx) error {
				got, err := tx.Changes(ctx, core.ChangesQuery{Kind: "note", Limit: 100, MaxBytes: c.maxBytes, Filter: filter})
				if err != nil {
					return err
				}
				if len(got) != c.want {
					t.Errorf("MaxBytes %d (filter %v): %d records, want %d", c.maxBytes, filter != nil, len(got), c.want)
				}
				for i, r := range got {
					if r.ID != "n"+string(rune('0'+i)) || string(r.Data) != string(data) {
						t.Errorf("record %d is %s", i, r.ID)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}
