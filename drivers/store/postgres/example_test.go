package postgres_test

import (
	"context"
	"fmt"
	"os"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/postgres"
)

// Two server instances share a database; one announces a change inside its
// write transaction, the other hears it when that transaction commits.
// (Compiled, not run: it needs a server named by OFFSYNC_POSTGRES_DSN.)
func ExampleOpen() {
	ctx := context.Background()
	dsn := os.Getenv("OFFSYNC_POSTGRES_DSN")
	a, err := postgres.Open(ctx, dsn, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	b, err := postgres.Open(ctx, dsn, &postgres.Options{MaxOpenConns: 16})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	if err := a.Register(ctx, core.Documents("todo")); err != nil {
		fmt.Println(err)
		return
	}
	notices, err := b.Listen(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	err = a.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		if err := tx.Put(ctx, core.Record{Kind: "todo", ID: "t1", Data: []byte(`{"title":"milk"}`)}); err != nil {
			return err
		}
		return a.Announce(ctx, core.Notice{Kind: "todo", ID: "t1"})
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println((<-notices).ID)
}
