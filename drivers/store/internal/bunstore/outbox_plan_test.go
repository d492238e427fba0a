package bunstore_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsync/offsync/conformance/storetest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
)

// queryPlan returns SQLite's plan of query, one line per step.
func queryPlan(t *testing.T, s *sqlite.Store, query string, args []any) string {
	t.Helper()
	rows, err := s.DB().QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// TestOpsPagePlan: a page of the outbox of every kind, as a push reads
// its heads, walks the outbox in seq order from AfterSeq and stops at the
// limit; it does not read every op of the kinds through the (kind, id)
// index and sort them. A page of some of the kinds keeps the index.
func TestOpsPagePlan(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "replica.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Register(ctx, storetest.Tables()...); err != nil {
		t.Fatal(err)
	}
	every := []string{storetest.ItemKind, storetest.NoteKind}
	for _, f := range []core.OpFilter{
		{Kinds: every, AfterSeq: 500, Limit: 4000},
		{Kinds: []string{storetest.NoteKind, storetest.ItemKind, "other"}, Limit: 500},
	} {
		q, args := s.OpsQuery(f)
		plan := queryPlan(t, s, q, args)
		if strings.Contains(plan, "TEMP B-TREE") || strings.Contains(plan, "offsync_outbox_kind_id") {
			t.Errorf("Ops(%+v): plan\n%s\nwant a walk in seq order", f, plan)
		}
	}
	q, args := s.OpsQuery(core.OpFilter{Kinds: []string{storetest.NoteKind}, AfterSeq: 500, Limit: 4000})
	if plan := queryPlan(t, s, q, args); !strings.Contains(plan, "offsync_outbox_kind_id") {
		t.Errorf("Ops of one kind of two: plan\n%s\nwant the (kind, id) index", plan)
	}
}
