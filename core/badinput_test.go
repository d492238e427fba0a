package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun"
)

func TestRegistryRules(t *testing.T) {
	open := func(context.Context, string, map[string]any) (core.Store, error) { return nil, nil }
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		f()
	}
	mustPanic("empty name", func() { core.RegisterStore("", open) })
	mustPanic("nil opener", func() { core.RegisterStore("test-nil", nil) })
	core.RegisterStore("test-dup", open)
	mustPanic("duplicate", func() { core.RegisterStore("test-dup", open) })
	mustPanic("nil transport", func() { core.RegisterTransport("test-t", nil) })
	mustPanic("nil resolver", func() { core.RegisterResolver("test-r", nil) })

	_, err := core.OpenStore(context.Background(), "nosuch", "", nil)
	if !errors.Is(err, core.ErrUnknownDriver) || !strings.Contains(err.Error(), `"nosuch" (forgotten import?)`) {
		t.Fatalf("unknown driver: %v", err)
	}
	if _, err := core.OpenTransport(context.Background(), "nosuch", "", nil); !errors.Is(err, core.ErrUnknownDriver) {
		t.Fatalf("unknown transport: %v", err)
	}
	found := false
	for _, n := range core.StoreDrivers() {
		found = found || n == "sqlite"
	}
	if !found {
		t.Fatalf("sqlite not registered: %v", core.StoreDrivers())
	}
}

type noSyncColumns struct {
	bun.BaseModel `bun:"table:bad1"`
	ID            string `bun:"id,pk" json:"id"`
}

type intKey struct {
	bun.BaseModel `bun:"table:bad2"`
	ID            int64 `bun:"id,pk" json:"id"`
	core.SyncColumns
}

type reservedField struct {
	bun.BaseModel `bun:"table:bad3"`
	ID            string `bun:"id,pk" json:"id"`
	Secret        string `json:"_secret"`
	core.SyncColumns
}

type untaggedKey struct {
	bun.BaseModel `bun:"table:bad4"`
	Key           string `bun:"key,pk" json:"key"`
	core.SyncColumns
}

func TestBadTablesAreRefusedAtRegistration(t *testing.T) {
	cases := []struct {
		name  string
		table core.Table
		want  error
	}{
		{"no SyncColumns", core.NewTable[noSyncColumns]("bad1"), core.ErrInvalid},
		{"int primary key", core.NewTable[intKey]("bad2"), core.ErrInvalid},
		{"reserved field", core.NewTable[reservedField]("bad3"), core.ErrReservedField},
		{"primary key not id", core.NewTable[untaggedKey]("bad4"), core.ErrInvalid},
		{"bad kind", core.Documents("Bad-Kind"), core.ErrInvalid},
		{"reserved kind", core.Documents("batch"), core.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t, "r.db")
			_, err := core.NewEngine(context.Background(), st, newAuthority(t, nil), &core.Options{Tables: []core.Table{c.table, notes}})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			var n int
			if err := st.DB().NewRaw("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'offsync%' AND name NOT LIKE 'sqlite%'").Scan(context.Background(), &n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("a refused registration created %d user tables", n)
			}
		})
	}
	t.Run("a kind listed twice", func(t *testing.T) {
		_, err := core.NewEngine(context.Background(), openStore(t, "r.db"), newAuthority(t, nil), &core.Options{Tables: []core.Table{notes, core.Documents("note")}})
		if !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a strategy for a kind that is no table", func(t *testing.T) {
		_, err := core.NewEngine(context.Background(), openStore(t, "r.db"), newAuthority(t, nil), &core.Options{
			Tables: []core.Table{notes}, Conflicts: core.Conflicts{Kinds: map[string]core.Resolver{"nope": core.ServerWins}}})
		if !errors.Is(err, core.ErrUnknownKind) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestBadWritesWriteNothing(t *testing.T) {
	ctx := context.Background()
	r := newReplica(t, newAuthority(t, nil), nil)
	cases := []struct {
		name string
		do   func() error
		want error
	}{
		{"empty id", func() error { return r.notes.Put(ctx, "", map[string]any{"v": 1}) }, core.ErrInvalid},
		{"reserved field id", func() error { return r.notes.Put(ctx, "a", map[string]any{"id": "x"}) }, core.ErrReservedField},
		{"reserved field _x", func() error { return r.notes.Put(ctx, "a", map[string]any{"_x": 1}) }, core.ErrReservedField},
		{"reserved field updated_at", func() error { return r.notes.Put(ctx, "a", map[string]any{"updated_at": "x"}) }, core.ErrReservedField},
		{"not an object", func() error { return r.notes.PutRaw(ctx, "a", []byte(`[1,2]`)) }, core.ErrInvalid},
		{"malformed JSON", func() error { return r.notes.PutRaw(ctx, "a", []byte(`{"v":`)) }, core.ErrInvalid},
		{"unencodable value", func() error { return r.notes.Put(ctx, "a", map[string]any{"f": func() {}}) }, core.ErrInvalid},
		{"update of a missing row", func() error { return r.todos.Update(ctx, &Todo{ID: "missing"}) }, core.ErrNotFound},
		{"delete of a missing row", func() error { return r.notes.Delete(ctx, "missing") }, core.ErrNotFound},
		{"nil model", func() error { return r.todos.Insert(ctx, nil) }, core.ErrInvalid},
		{"unknown kind", func() error {
			return core.DocsFor(r.eng, core.Documents("other")).Put(ctx, "a", map[string]any{})
		}, core.ErrUnknownKind},
		{"update diff of two records", func() error { return r.todos.UpdateDiff(ctx, &Todo{ID: "a"}, &Todo{ID: "b"}) }, core.ErrInvalid},
	}
	for _, c := range cases {
		if err := c.do(); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	if ops := r.ops(t); len(ops) != 0 {
		t.Fatalf("bad writes enqueued %v", ops)
	}
	if rows, _ := r.eng.List(ctx, "note", core.ListOptions{IncludeDeleted: true}); len(rows) != 0 {
		t.Fatalf("bad writes wrote %v", rows)
	}
	if _, err := r.eng.Get(ctx, "nope", "a"); !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("Get of an unknown kind: %v", err)
	}
}

func TestBadPagesApplyNothing(t *testing.T) {
	ctx := context.Background()
	svc := newAuthority(t, nil)
	other := newReplica(t, svc, nil)
	_ = other.notes.Put(ctx, "a", map[string]any{"v": 1})
	_ = other.notes.Put(ctx, "b", map[string]any{"v": 2})
	mustSync(t, other)
	breaks := map[string]func(p core.Page) core.Page{
		"wrong kind":   func(p core.Page) core.Page { p.Records[1].Kind = "todo"; return p },
		"empty id":     func(p core.Page) core.Page { p.Records[1].ID = ""; return p },
		"no version":   func(p core.Page) core.Page { p.Records[1].UpdatedAt = time.Time{}; return p },
		"out of order": func(p core.Page) core.Page { p.Records[0], p.Records[1] = p.Records[1], p.Records[0]; return p },
		"repeated row": func(p core.Page) core.Page { p.Records[1] = p.Records[0]; return p },
	}
	for name, f := range breaks {
		t.Run(name, func(t *testing.T) {
			w := &wire{inner: svc}
			w.onPull = func(p core.Page) core.Page {
				if len(p.Records) >= 2 {
					return f(p)
				}
				return p
			}
			r := newReplica(t, w, nil)
			_ = r.notes.Put(ctx, "mine", map[string]any{"v": 0})
			_, err := r.eng.Sync(ctx, core.Kinds("note"))
			if !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("err = %v", err)
			}
			rows, _ := r.eng.List(ctx, "note", core.ListOptions{})
			if len(rows) != 1 || rows[0].ID != "mine" {
				t.Fatalf("a bad page applied rows: %v", rows)
			}
			if c, _ := r.eng.Cursor(ctx, "note"); !c.IsZero() {
				t.Fatalf("cursor moved to %+v", c)
			}
		})
	}
}

type embedded struct {
	Extra string `json:"extra"`
}

type withEmbedded struct {
	bun.BaseModel `bun:"table:with_embedded"`
	ID            string `bun:"id,pk" json:"id"`
	Name          string `json:"name,omitempty"`
	Local         string `json:"local" offsync:"local"`
	embedded
	core.SyncColumns
}

type flat struct {
	bun.BaseModel `bun:"table:flat"`
	ID            string `bun:"id,pk" json:"id"`
	Name          string `json:"name,omitempty"`
	Local         string `json:"local" offsync:"local"`
	Extra         string `json:"extra"`
	core.SyncColumns
}

// The fast path (one marshal of the business fields) and the general path
// (marshal, strip, re-marshal) give the same record.
func TestTypedTableRecordPaths(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
	slow := core.NewTable[withEmbedded]("with_embedded")
	fast := core.NewTable[flat]("flat")
	r1, err := slow.Record(&withEmbedded{ID: "a", Name: "n", Local: "l", embedded: embedded{Extra: "e"},
		SyncColumns: core.SyncColumns{UpdatedAt: core.TimestampOf(at)}})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := fast.Record(&flat{ID: "a", Name: "n", Local: "l", Extra: "e", SyncColumns: core.SyncColumns{UpdatedAt: core.TimestampOf(at)}})
	if err != nil {
		t.Fatal(err)
	}
	if string(r1.Data) != `{"extra":"e","name":"n"}` || string(r2.Data) != `{"name":"n","extra":"e"}` {
		t.Fatalf("data %s / %s", r1.Data, r2.Data)
	}
	if r1.ID != "a" || !r2.UpdatedAt.Equal(at) {
		t.Fatalf("system fields %+v", r2)
	}
	m, err := fast.Model(r2)
	if err != nil || m.Name != "n" || m.Extra != "e" || m.Local != "" || !m.UpdatedAt.Time.Equal(at) {
		t.Fatalf("round trip %+v %v", m, err)
	}
}
