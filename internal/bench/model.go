package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/uptrace/bun"
)

// Item is the standard benchmark record, a typed table: about 215 bytes of
// business data (its JSON form without the system fields).
type Item struct {
	bun.BaseModel `bun:"table:items"`
	ID            string `bun:"id,pk" json:"id"`
	Title         string `json:"title"`
	Body          string `json:"body"`
	Count         int    `json:"count"`
	Done          bool   `json:"done"`
	core.SyncColumns
}

// Items is the typed table of Item, kind "item".
var Items = core.NewTable[Item]("item")

// Task is Item with an owner: the rows of the many-replicas scenario, where
// the server scopes each replica to its own rows (owner = its principal).
type Task struct {
	bun.BaseModel `bun:"table:tasks"`
	ID            string `bun:"id,pk" json:"id"`
	Owner         string `json:"owner"`
	Title         string `json:"title"`
	Body          string `json:"body"`
	Count         int    `json:"count"`
	Done          bool   `json:"done"`
	core.SyncColumns
}

// Tasks is the typed table of Task, kind "task".
var Tasks = core.NewTable[Task]("task")

var body = strings.Repeat("lorem ipsum dolor sit amet ", 5)[:120]

// NewItem returns record number i of the standard data set.
func NewItem(i int) *Item {
	return &Item{
		ID:    fmt.Sprintf("item-%08d", i),
		Title: fmt.Sprintf("Item number %d of the benchmark data set", i),
		Body:  body,
		Count: i, Done: i%2 == 0,
	}
}

// seedChunk is the number of rows per transaction of Seed.
const seedChunk = 10_000

// Seed writes records 0..n-1 of the standard data set into a fresh SQLite
// authority file at path (see SeedStore), then folds the WAL into the main
// file, so that the file alone is the data set and can be copied.
func Seed(ctx context.Context, path string, n int) error {
	if n < 0 {
		return fmt.Errorf("bench: seed %d rows: %w", n, core.ErrInvalid)
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("bench: seed %s: the file exists: %w", path, core.ErrInvalid)
	}
	st, err := sqlite.Open(ctx, path, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := SeedStore(ctx, st, n); err != nil {
		return err
	}
	if _, err := st.DB().ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("bench: checkpoint %s: %w", path, err)
	}
	return nil
}

// SeedStore writes records 0..n-1 of the standard data set into st, an
// empty authority store, directly (bulk pages, not the network), with
// versions one microsecond apart ending an hour ago, and records the last
// version so that later writes stamp above it.
func SeedStore(ctx context.Context, st core.Store, n int) error {
	if n < 0 {
		return fmt.Errorf("bench: seed %d rows: %w", n, core.ErrInvalid)
	}
	if err := st.Register(ctx, Items, Tasks); err != nil {
		return err
	}
	base := core.Micro(time.Now().Add(-time.Hour - time.Duration(n)*time.Microsecond))
	for start := 0; start < n; start += seedChunk {
		end := min(start+seedChunk, n)
		err := st.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			recs := make([]core.Record, 0, end-start)
			for i := start; i < end; i++ {
				rec, err := Items.Record(NewItem(i))
				if err != nil {
					return err
				}
				rec.UpdatedAt = base.Add(time.Duration(i) * time.Microsecond)
				recs = append(recs, rec)
			}
			_, err := tx.ApplyPage(ctx, Items.Kind(), recs)
			return err
		})
		if err != nil {
			return fmt.Errorf("bench: seed rows %d..%d: %w", start, end, err)
		}
	}
	return st.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		_, err := tx.NextVersion(ctx, Items.Kind(), base.Add(time.Duration(n)*time.Microsecond))
		return err
	})
}
