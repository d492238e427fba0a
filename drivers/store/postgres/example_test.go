package postgres_test

import (
	"context"
	"fmt"
	"os"
	"time"

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

// On a database without LISTEN/NOTIFY (CockroachDB), instances learn of
// each other's writes by polling the kinds' versions; a write transaction
// that meets a serialization failure is run again, here at most 5 times.
// (Compiled, not run: it needs a server named by OFFSYNC_POSTGRES_DSN.)
func ExampleOptions_poll() {
	ctx := context.Background()
	dsn := os.Getenv("OFFSYNC_POSTGRES_DSN") + "&default_transaction_isolation=serializable"
	s, err := postgres.Open(ctx, dsn, &postgres.Options{
		Notify:        postgres.NotifyPoll,
		PollInterval:  250 * time.Millisecond,
		RetryAttempts: 5,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	if err := s.Register(ctx, core.Documents("todo")); err != nil {
		fmt.Println(err)
		return
	}
	notices, err := s.Listen(ctx) // polls: no LISTEN connection
	if err != nil {
		fmt.Println(err)
		return
	}
	err = s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		v, err := tx.NextVersion(ctx, "todo", time.Now())
		if err != nil {
			return err
		}
		return tx.Put(ctx, core.Record{Kind: "todo", ID: "t1", UpdatedAt: v, Data: []byte(`{"title":"milk"}`)})
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	n := <-notices // the kind and its new version, within PollInterval
	fmt.Println(n.Kind)
}
