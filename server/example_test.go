package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

// An authority on a SQLite file serving the document kind "note": a client
// pushes a create, then pulls the kind's feed.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "offsync-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	store, err := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	clock := core.NewManualClock(time.Date(2026, 11, 24, 19, 41, 55, 123456000, time.UTC))
	svc, err := server.New(ctx, store, &server.Options{
		Tables: []core.Table{core.Documents("note")},
		Clock:  clock,
	})
	if err != nil {
		panic(err)
	}
	defer svc.Close()

	res, err := svc.Push(ctx, []core.Op{{
		OpID: "op-1", Kind: "note", ID: "n1", Type: core.OpUpsert,
		Payload: []byte(`{"title":"buy milk"}`),
	}})
	if err != nil {
		panic(err)
	}
	fmt.Println(res[0].Status, core.FormatTime(res[0].Record.UpdatedAt))

	page, err := svc.Pull(ctx, core.PullRequest{Kind: "note", Limit: 10})
	if err != nil {
		panic(err)
	}
	for _, r := range page.Records {
		fmt.Println(r.ID, string(r.Data))
	}
	fmt.Printf("more: %v\n", page.NextPageToken != "")
	// Output:
	// applied 2026-11-24T19:41:55.123456Z
	// n1 {"title":"buy milk"}
	// more: false
}
