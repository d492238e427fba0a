package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/uptrace/bun"
)

type Todo struct {
	bun.BaseModel `bun:"table:todos"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Done          bool   `json:"done"`
	core.SyncColumns
}

// Open a store, register a typed table, write a pulled record through the
// store and read it back with bun.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "offsync-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := sqlite.Open(ctx, filepath.Join(dir, "app.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	todos := core.NewTable[Todo]("todo")
	if err := store.Register(ctx, todos); err != nil {
		log.Fatal(err)
	}

	page := []core.Record{{
		Kind: "todo", ID: "t1",
		UpdatedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC),
		Data:      json.RawMessage(`{"title":"buy milk","done":false}`),
	}}
	err = store.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		_, err := tx.ApplyPage(ctx, "todo", page)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	var got []Todo
	if err := store.DB().NewSelect().Model(&got).Order("id").Scan(ctx); err != nil {
		log.Fatal(err)
	}
	for _, t := range got {
		fmt.Println(t.ID, t.Title, t.Done, t.UpdatedAt.Format(core.TimeLayout))
	}
	// Output: t1 buy milk false 2026-01-02T03:04:05.123456Z
}
