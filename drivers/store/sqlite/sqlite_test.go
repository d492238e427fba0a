package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/offsync/offsync/conformance/storetest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/internal/bunstore"
	"github.com/offsync/offsync/drivers/store/sqlite"
)

type harness struct{}

func (harness) NewStore(t *testing.T) core.Store { return openStore(t) }

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "offsync.db"), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, harness{}) }

func TestPragmas(t *testing.T) {
	s := openStore(t)
	var mode string
	if err := s.DB().NewRaw("PRAGMA journal_mode").Scan(t.Context(), &mode); err != nil {
		t.Fatal(err)
	}
	if !strings.EqualFold(mode, "wal") {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
	var sync int
	if err := s.DB().NewRaw("PRAGMA synchronous").Scan(t.Context(), &sync); err != nil {
		t.Fatal(err)
	}
	if sync != 1 {
		t.Fatalf("synchronous = %d, want 1 (NORMAL)", sync)
	}
	var temp int
	if err := s.DB().NewRaw("PRAGMA temp_store").Scan(t.Context(), &temp); err != nil {
		t.Fatal(err)
	}
	if temp != 2 {
		t.Fatalf("temp_store = %d, want 2 (MEMORY: savepoint sub-journals in memory)", temp)
	}
	full, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "full.db"), &sqlite.Options{Synchronous: "full"})
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	if err := full.DB().NewRaw("PRAGMA synchronous").Scan(t.Context(), &sync); err != nil {
		t.Fatal(err)
	}
	if sync != 2 {
		t.Fatalf("synchronous = %d, want 2 (FULL)", sync)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for name, o := range map[string]*sqlite.Options{
		"synchronous": {Synchronous: "sometimes"},
		"busy":        {BusyTimeout: -time.Second},
	} {
		_, err := sqlite.Open(t.Context(), filepath.Join(dir, name+".db"), o)
		if !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s: Open error %v, want ErrInvalid", name, err)
		}
	}
	if _, err := sqlite.Open(t.Context(), "", nil); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("empty dsn: %v", err)
	}
	if _, err := sqlite.Open(t.Context(), filepath.Join(dir, "no", "such", "dir", "x.db"), nil); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
	_, err := core.OpenStore(t.Context(), "sqlite", filepath.Join(dir, "o.db"), map[string]any{"colour": "blue"})
	if !errors.Is(err, core.ErrInvalid) {
		t.Errorf("unknown option: %v", err)
	}
}

func TestRegistry(t *testing.T) {
	s, err := core.OpenStore(t.Context(), "sqlite", filepath.Join(t.TempDir(), "r.db"),
		map[string]any{"synchronous": "FULL", "busy_timeout": "2s"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var sync int
	if err := s.(*sqlite.Store).DB().NewRaw("PRAGMA synchronous").Scan(t.Context(), &sync); err != nil {
		t.Fatal(err)
	}
	if sync != 2 {
		t.Fatalf("synchronous = %d, want FULL", sync)
	}
}

// A write transaction in progress does not block View, which sees the last
// committed state.
func TestWriterDoesNotBlockView(t *testing.T) {
	s := openStore(t)
	if err := s.Register(t.Context(), storetest.Tables()...); err != nil {
		t.Fatal(err)
	}
	put := func(ctx context.Context, tx core.Tx, id string) error {
		return tx.Put(ctx, core.Record{Kind: storetest.NoteKind, ID: id, UpdatedAt: time.Unix(1, 0), Data: json.RawMessage(`{}`)})
	}
	if err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error { return put(ctx, tx, "committed") }); err != nil {
		t.Fatal(err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(context.Background(), func(ctx context.Context, tx core.Tx) error {
			if err := put(ctx, tx, "uncommitted"); err != nil {
				return err
			}
			close(inside)
			<-release
			return nil
		})
	}()
	<-inside
	// If View queued behind the writer this would never return; the
	// deadline only turns that hang into a failure.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var ids []string
	err := s.View(ctx, func(ctx context.Context, tx core.Tx) error {
		recs, err := tx.List(ctx, storetest.NoteKind, core.ListOptions{})
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		return err
	})
	close(release)
	if err != nil {
		t.Fatalf("View during a write: %v", err)
	}
	if len(ids) != 1 || ids[0] != "committed" {
		t.Fatalf("View saw %v, want only the committed row", ids)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keep.db")
	s, err := sqlite.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Register(t.Context(), storetest.Tables()...); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	err = s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		if err := tx.Put(ctx, core.Record{Kind: storetest.ItemKind, ID: "a", UpdatedAt: ts, Data: json.RawMessage(`{"title":"kept"}`)}); err != nil {
			return err
		}
		if err := tx.Enqueue(ctx, &core.Op{OpID: "op", Kind: storetest.ItemKind, ID: "a", Type: core.OpDelete}); err != nil {
			return err
		}
		return tx.SetCursor(ctx, storetest.ItemKind, core.Cursor{UpdatedAt: ts, ID: "a"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(t.Context(), func(context.Context, core.Tx) error { return nil }); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Update after Close: %v, want ErrClosed", err)
	}
	s2, err := sqlite.Open(t.Context(), "file:"+path+"?_pragma=cache_size(-2000)", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Register(t.Context(), storetest.Tables()...); err != nil {
		t.Fatal(err)
	}
	err = s2.View(t.Context(), func(ctx context.Context, tx core.Tx) error {
		rec, err := tx.Get(ctx, storetest.ItemKind, "a")
		if err != nil {
			return err
		}
		if !rec.UpdatedAt.Equal(ts) {
			return fmt.Errorf("UpdatedAt %v, want %v", rec.UpdatedAt, ts)
		}
		op, err := tx.GetOp(ctx, "op")
		if err != nil {
			return err
		}
		if op.Type != core.OpDelete {
			return fmt.Errorf("op %+v", op)
		}
		c, err := tx.Cursor(ctx, storetest.ItemKind)
		if err != nil {
			return err
		}
		if !c.UpdatedAt.Equal(ts) || c.ID != "a" {
			return fmt.Errorf("cursor %+v", c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var versions int
	if err := s2.DB().NewRaw("SELECT COUNT(*) FROM offsync_schema").Scan(t.Context(), &versions); err != nil {
		t.Fatal(err)
	}
	if want := bunstore.SchemaVersion(); versions != want {
		t.Fatalf("offsync_schema has %d rows, want %d (each migration once)", versions, want)
	}
}

// The bun transaction underneath a core.Tx carries the application's own
// writes atomically with the store's; local-only columns survive Put and
// ApplyPage.
func TestBunTxAndLocalColumns(t *testing.T) {
	s := openStore(t)
	if err := s.Register(t.Context(), storetest.Tables()...); err != nil {
		t.Fatal(err)
	}
	rec := core.Record{Kind: storetest.ItemKind, ID: "a", UpdatedAt: time.Unix(5, 0), Data: json.RawMessage(`{"title":"t"}`)}
	boom := errors.New("boom")
	err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		if err := tx.Put(ctx, rec); err != nil {
			return err
		}
		if _, ok := tx.(core.BunTx).BunTx().(bun.Tx); !ok {
			return fmt.Errorf("BunTx() is %T", tx.(core.BunTx).BunTx())
		}
		if _, err := sqlite.Bun(tx).NewUpdate().Model((*storetest.Item)(nil)).Set("note = ?", "mine").Where("id = ?", "a").Exec(ctx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	var n int
	if err := s.DB().NewSelect().Model((*storetest.Item)(nil)).ColumnExpr("COUNT(*)").Scan(t.Context(), &n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d rows after rollback", n)
	}
	err = s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		if err := tx.Put(ctx, rec); err != nil {
			return err
		}
		_, err := sqlite.Bun(tx).NewUpdate().Model((*storetest.Item)(nil)).Set("note = ?", "mine").Where("id = ?", "a").Exec(ctx)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	note := func() string {
		var it storetest.Item
		if err := s.DB().NewSelect().Model(&it).Where("id = ?", "a").Scan(t.Context()); err != nil {
			t.Fatal(err)
		}
		return it.Note
	}
	rec2 := rec
	rec2.Data = json.RawMessage(`{"title":"server"}`)
	err = s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		if err := tx.Put(ctx, rec2); err != nil {
			return err
		}
		_, err := tx.ApplyPage(ctx, storetest.ItemKind, []core.Record{rec2})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := note(); got != "mine" {
		t.Fatalf("local column after Put and ApplyPage = %q, want mine", got)
	}
}

// A nested Update that fails undoes only its own writes.
func TestNestedUpdateFailureIsContained(t *testing.T) {
	s := openStore(t)
	if err := s.Register(t.Context(), storetest.Tables()...); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	mk := func(id string) core.Record {
		return core.Record{Kind: storetest.NoteKind, ID: id, UpdatedAt: time.Unix(1, 0), Data: json.RawMessage(`{}`)}
	}
	err := s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		if err := tx.Put(ctx, mk("outer")); err != nil {
			return err
		}
		err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			if err := tx.Put(ctx, mk("inner")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			return fmt.Errorf("inner Update: %v", err)
		}
		// Register inside a transaction is refused (it would wait for itself).
		if err := s.Register(ctx, storetest.Tables()...); !errors.Is(err, core.ErrInvalid) {
			return fmt.Errorf("Register inside Update: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(t.Context(), func(ctx context.Context, tx core.Tx) error {
		if _, err := tx.Get(ctx, storetest.NoteKind, "outer"); err != nil {
			return err
		}
		if _, err := tx.Get(ctx, storetest.NoteKind, "inner"); !errors.Is(err, core.ErrNotFound) {
			return fmt.Errorf("inner row: %v", err)
		}
		// Update inside View is refused.
		return s.Update(ctx, func(context.Context, core.Tx) error { return nil })
	})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("Update inside View: %v, want ErrInvalid", err)
	}
}

func TestMemory(t *testing.T) {
	s, err := sqlite.Open(t.Context(), ":memory:", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Register(t.Context(), storetest.Tables()...); err != nil {
		t.Fatal(err)
	}
	err = s.Update(t.Context(), func(ctx context.Context, tx core.Tx) error {
		return tx.Put(ctx, core.Record{Kind: storetest.NoteKind, ID: "m", UpdatedAt: time.Unix(1, 0), Data: json.RawMessage(`{}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(t.Context(), func(ctx context.Context, tx core.Tx) error {
		_, err := tx.Get(ctx, storetest.NoteKind, "m")
		return err
	})
	if err != nil {
		t.Fatalf("View of an in-memory store does not see its write: %v", err)
	}
}
