package rest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
)

// Two replicas sync through the REST pair and the real server.
func TestEngineOverREST(t *testing.T) {
	ctx := context.Background()
	s := newStack(t, nil, nil)
	docs := core.Documents("note")
	replica := func(name string) (*core.Engine, *core.DocWriter) {
		st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), name+".db"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		eng, err := core.NewEngine(ctx, st, rest.NewClient(s.srv.URL, nil), &core.Options{Tables: []core.Table{docs}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
		return eng, core.DocsFor(eng, docs)
	}
	a, aw := replica("a")
	b, bw := replica("b")
	for i := range 25 {
		if err := aw.Put(ctx, fmt.Sprintf("n/%d é", i), map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := b.Sync(ctx); err != nil || st.Pulled != 25 {
		t.Fatalf("b sync: %+v %v", st, err)
	}
	// Both edit one note; b deletes another.
	if err := aw.Put(ctx, "n/1 é", map[string]any{"i": 1, "by": "a"}); err != nil {
		t.Fatal(err)
	}
	if err := bw.Put(ctx, "n/1 é", map[string]any{"i": 1, "note": "b"}); err != nil {
		t.Fatal(err)
	}
	if err := bw.Delete(ctx, "n/2 é"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		for _, e := range []*core.Engine{a, b} {
			if _, err := e.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := pullAll(t, s.client, "note", core.Cursor{}, 100)
	for _, e := range []*core.Engine{a, b} {
		for _, w := range want {
			got, err := e.Get(ctx, "note", w.ID)
			if w.Deleted() {
				if err == nil && !got.Deleted() {
					t.Fatalf("%s still alive", w.ID)
				}
				continue
			}
			if err != nil || string(got.Data) != string(w.Data) || !got.UpdatedAt.Equal(w.UpdatedAt) {
				t.Fatalf("%s: replica %+v (%v), authority %+v", w.ID, got, err, w)
			}
		}
	}
}
