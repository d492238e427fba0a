package core_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

// exampleWorld opens an authority and a replica on SQLite files in dir.
func exampleWorld(ctx context.Context, dir string) (*core.Engine, *server.Service, func()) {
	auth, err := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), nil)
	if err != nil {
		panic(err)
	}
	svc, err := server.New(ctx, auth, &server.Options{Tables: []core.Table{todos}})
	if err != nil {
		panic(err)
	}
	local, err := sqlite.Open(ctx, filepath.Join(dir, "replica.db"), nil)
	if err != nil {
		panic(err)
	}
	eng, err := core.NewEngine(ctx, local, svc, &core.Options{Tables: []core.Table{todos}})
	if err != nil {
		panic(err)
	}
	return eng, svc, func() { eng.Close(); local.Close(); svc.Close(); auth.Close() }
}

func ExampleNewEngine() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-example-")
	defer os.RemoveAll(dir)
	eng, svc, closeAll := exampleWorld(ctx, dir)
	defer closeAll()

	w := core.WriterFor(eng, todos)
	// The row and its outbox op commit together; nothing has left the device yet.
	if err := w.Insert(ctx, &Todo{ID: "t1", Title: "write the docs"}); err != nil {
		panic(err)
	}
	pending, _ := eng.Pending(ctx)
	fmt.Println("pending:", pending)

	stats, err := eng.Sync(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("pushed:", stats.Pushed)
	rec, _ := svc.Get(ctx, "todo", "t1")
	fmt.Println("authority:", string(rec.Data))
	// Output:
	// pending: [{todo pending 1}]
	// pushed: 1
	// authority: {"title":"write the docs","done":false}
}

func ExampleWriter_UpdateDiff() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-example-")
	defer os.RemoveAll(dir)
	eng, _, closeAll := exampleWorld(ctx, dir)
	defer closeAll()

	w := core.WriterFor(eng, todos)
	before := Todo{ID: "t1", Title: "draft"}
	_ = w.Insert(ctx, &before)
	_, _ = eng.Sync(ctx)

	after := before
	after.Done = true
	// Only the fields that differ count as changed: on a conflict,
	// autoPreserve keeps the server's title and applies this done.
	if err := w.UpdateDiff(ctx, &before, &after); err != nil {
		panic(err)
	}
	ops, _ := eng.Pending(ctx)
	fmt.Println(ops)
	// Output:
	// [{todo pending 1}]
}

func ExampleEngine_Subscribe() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-example-")
	defer os.RemoveAll(dir)
	eng, _, closeAll := exampleWorld(ctx, dir)
	defer closeAll()

	sub := eng.Subscribe(64) // a slow reader never blocks Sync; it drops events instead
	defer sub.Close()
	_ = core.WriterFor(eng, todos).Insert(ctx, &Todo{ID: "t1", Title: "x"})
	_, _ = eng.Sync(ctx)
	for len(sub.C) > 0 {
		switch ev := (<-sub.C).(type) {
		case core.SyncStarted:
			fmt.Println("sync started")
		case core.OpApplied:
			fmt.Println("applied", ev.Op.Kind, ev.Op.ID)
		case core.PagePulled:
			fmt.Println("pulled", ev.Kind, ev.Upserts)
		case core.SyncCompleted:
			fmt.Println("completed: pushed", ev.Stats.Pushed, "pulled", ev.Stats.Pulled)
		}
	}
	// Output:
	// sync started
	// applied todo t1
	// pulled todo 1
	// completed: pushed 1 pulled 1
}

// PullEach walks a kind's feed over a transport's Pull, page after page —
// what a transport that cannot stream offers as its PullPages.
func ExamplePullEach() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-example-")
	defer os.RemoveAll(dir)
	eng, svc, closeAll := exampleWorld(ctx, dir)
	defer closeAll()
	w := core.WriterFor(eng, todos)
	for _, id := range []string{"t1", "t2", "t3"} {
		if err := w.Insert(ctx, &Todo{ID: id, Title: "task " + id}); err != nil {
			panic(err)
		}
	}
	if _, err := eng.Sync(ctx); err != nil {
		panic(err)
	}

	err := core.PullEach(ctx, svc, core.PullRequest{Kind: "todo", Limit: 2}, func(p core.Page) error {
		var ids []string
		for _, r := range p.Records {
			ids = append(ids, r.ID)
		}
		fmt.Println("page:", ids, "more:", p.NextPageToken != "")
		return nil
	})
	if err != nil {
		panic(err)
	}
	// Output:
	// page: [t1 t2] more: true
	// page: [t3] more: false
}
