// Command readme is the program of the README's "In your program" section,
// whole: the README shows its middle, this file compiles it and main_test.go
// runs it against a real server, so the snippet stays true.
//
//	go run ./examples/readme -url http://127.0.0.1:8080 -db ./app.db
//
// (start the server first: go run ./cmd/offsync serve)
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/uptrace/bun"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
)

// Todo is a synced table: a bun model that embeds the sync columns.
type Todo struct {
	bun.BaseModel    `bun:"table:todos"`
	ID               string `bun:"id,pk" json:"id"`
	Title            string `json:"title"`
	Done             bool   `json:"done"`
	core.SyncColumns        // updated_at, deleted_at, edited_at, deleted_at_local
}

// run opens the replica at dbPath, writes a todo, syncs once with the
// server at url and, with watch, keeps syncing until ctx ends.
func run(ctx context.Context, dbPath, url string, watch bool) (core.Stats, error) {
	store, err := sqlite.Open(ctx, dbPath, nil) // store.DB() is a *bun.DB for your queries
	if err != nil {
		return core.Stats{}, err
	}
	defer store.Close()
	todos := core.NewTable[Todo]("todo")
	transport := rest.NewClient(url, nil) // &rest.Options{Token: ...} for a server with tokens
	eng, err := core.NewEngine(ctx, store, transport, &core.Options{
		Tables: []core.Table{todos},
		Conflicts: core.Conflicts{Default: core.AutoPreserve, // a field-level merge
			Kinds: map[string]core.Resolver{"todo": core.AutoPreserve}}, // or per kind: core.ClientWins, ...
	})
	if err != nil {
		return core.Stats{}, err
	}
	defer eng.Close()

	w := core.WriterFor(eng, todos)
	t := Todo{ID: "t1", Title: "buy milk"}
	if err := w.Insert(ctx, &t); err != nil { // local row + outbox op, one transaction
		return core.Stats{}, err
	}
	t.Title = "buy oat milk"
	if err := w.Update(ctx, &t, core.Changed("title")); err != nil { // the base version comes from the stored row
		return core.Stats{}, err
	}
	stats, err := eng.Sync(ctx) // push, then pull
	if err != nil {
		return stats, err
	}
	if watch {
		err = eng.Run(ctx, core.Every(5*time.Minute), core.PushOnWrite(), core.Realtime()) // until ctx ends
	}
	return stats, err
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "the offsync server")
	db := flag.String("db", "./app.db", "the local SQLite file")
	watch := flag.Bool("watch", false, "keep syncing (every 5 minutes, on writes and on the server's notices) until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	stats, err := run(ctx, *db, *url, *watch)
	if err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
	fmt.Printf("pushed %d, pulled %d\n", stats.Pushed, stats.Pulled)
}
