package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to count what the authority applied

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/internal/multitest"
	"github.com/offsync/offsync/internal/pgtest"
)

// multiReplica is a replica (a SQLite file of its own) syncing over REST
// with baseURL.
func multiReplica(t *testing.T, name, baseURL string, notes core.Table) *core.Engine {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), name+".db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	eng, err := core.NewEngine(t.Context(), st, rest.NewClient(baseURL, &rest.Options{Timeout: 20 * time.Second}), &core.Options{
		Tables:    []core.Table{notes},
		BatchSize: 10,
		Backoff:   core.Backoff{Initial: 10 * time.Millisecond, Max: 200 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng
}

// drain syncs eng until a Sync succeeds with nothing left in its outbox;
// ctx bounds it.
func drain(ctx context.Context, eng *core.Engine) error {
	var last error
	for {
		_, err := eng.Sync(ctx)
		if err == nil {
			pending, perr := eng.Pending(ctx)
			if perr != nil {
				return perr
			}
			n := 0
			for _, c := range pending {
				n += c.Count
			}
			if n == 0 {
				return nil
			}
			err = fmt.Errorf("%d ops still in the outbox: %+v", n, pending)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestThreeInstancesOnOnePostgres runs three `offsync serve` processes on
// one Postgres database, six replicas spread over them (two per instance,
// the second instance's behind a failover proxy) and a realtime watcher on
// the third. A write through instance 1 reaches the watcher through
// instance 3's notices. Then every replica writes and syncs; while they do,
// instance 2 is killed with SIGKILL right after committing a push whose
// answer it never sends, and its replicas go on through instance 1. At the
// end a trigger's log of every row version the authority wrote holds each
// op's marker exactly once (nothing lost, nothing applied twice), and every
// replica, the watcher included, holds every record.
func TestThreeInstancesOnOnePostgres(t *testing.T) {
	dsn := pgtest.New(t)
	ctx := t.Context()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		defer cancel()
	}
	var inst [3]*serveProcess
	for i := range inst {
		inst[i] = startServeIn(t, t.TempDir(), "--store", "postgres", "--dsn", dsn, "--kind", "note")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := multitest.InstallAppliedLog(ctx, db); err != nil {
		t.Fatal(err)
	}

	notes := core.Documents("note")
	proxy := multitest.NewFailover(t, inst[1].URL)
	proxy.Kill = func() {
		_ = inst[1].cmd.Process.Signal(syscall.SIGKILL)
		<-inst[1].done
		proxy.Retarget(t, inst[0].URL)
	}
	urls := []string{inst[0].URL, proxy.URL, inst[2].URL}
	const replicas, writes = 6, 60
	reps := make([]*core.Engine, replicas)
	for i := range reps {
		reps[i] = multiReplica(t, fmt.Sprintf("r%d", i), urls[i%3], notes)
	}

	// Realtime across instances: the watcher hears, through instance 3,
	// of a write pushed through instance 1.
	watcher := multiReplica(t, "watcher", inst[2].URL, notes)
	sub := watcher.Subscribe(1024)
	defer sub.Close()
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- watcher.Run(runCtx, core.Realtime()) }()
	waitFor := func(what string, ok func(core.Event) bool) {
		t.Helper()
		for {
			select {
			case ev, open := <-sub.C:
				if !open {
					t.Fatalf("event stream closed waiting for %s", what)
				}
				if ok(ev) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			}
		}
	}
	waitFor("the watcher's first sync", func(ev core.Event) bool { _, ok := ev.(core.SyncCompleted); return ok })
	if err := core.DocsFor(reps[0], notes).Put(ctx, "hello", map[string]any{"m": "hello"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reps[0].Sync(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor("the watcher pulling the write of instance 1", func(ev core.Event) bool {
		p, ok := ev.(core.PagePulled)
		return ok && p.Kind == "note" && p.Upserts > 0
	})
	if _, err := watcher.Get(ctx, "note", "hello"); err != nil {
		t.Fatalf("watcher after the notice: %v", err)
	}

	// Load, and instance 2 killed in the middle of it.
	var wg sync.WaitGroup
	errs := make(chan error, replicas)
	var synced atomic.Int64
	for r, eng := range reps {
		wg.Go(func() {
			docs := core.DocsFor(eng, notes)
			for i := range writes {
				m := fmt.Sprintf("r%d-%d", r, i)
				if err := docs.Put(ctx, m, map[string]any{"m": m}); err != nil {
					errs <- err
					return
				}
				if i%6 == 5 {
					if _, err := eng.Sync(ctx); err != nil {
						t.Logf("replica %d: sync failed (retried later): %v", r, err)
					} else if synced.Add(1) == replicas {
						proxy.Arm() // every replica has pushed once
					}
				}
			}
			if err := drain(ctx, eng); err != nil {
				errs <- fmt.Errorf("replica %d: %w", r, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	select {
	case path := <-proxy.Killed:
		t.Logf("instance 2 killed after committing POST %s, its answer dropped; exit %d", path, inst[1].code)
	default:
		t.Fatal("instance 2 was never killed: no push went through it once armed")
	}

	// Every op applied exactly once.
	want := map[string]bool{"hello": true}
	for r := range replicas {
		for i := range writes {
			want[fmt.Sprintf("r%d-%d", r, i)] = true
		}
	}
	applied, err := multitest.Applied(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range multitest.Check(applied, want) {
		t.Error(err)
	}

	// Every replica, through whichever instance, holds every record; the
	// watcher gets them through its notices (bounded by ctx).
	for r, eng := range reps {
		if err := drain(ctx, eng); err != nil {
			t.Fatalf("replica %d: %v", r, err)
		}
	}
	for r, eng := range append(reps, watcher) {
		for m := range want {
			for {
				_, err := eng.Get(ctx, "note", m)
				if err == nil {
					break
				}
				if eng != watcher || !errors.Is(err, core.ErrNotFound) {
					t.Fatalf("replica %d: %s: %v", r, m, err)
				}
				select {
				case <-ctx.Done():
					t.Fatalf("the watcher never received %s: %v", m, ctx.Err())
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
	stopRun()
	if err := <-runDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("watcher's Run returned %v", err)
	}
	t.Logf("%d ops, each applied once by the authority; %d replicas and the watcher hold all of them", len(want), replicas)

	// Negative control: the count sees an op applied twice. A second write
	// carrying the marker of "hello" (what a re-send without its op id
	// would do) is counted as such.
	if status, body := call(t, "PUT", inst[2].URL+"/note/dup", "", `{"m":"hello"}`); status != 200 {
		t.Fatalf("PUT: %d %v", status, body)
	}
	applied, err = multitest.Applied(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(applied["hello"]); n != 2 {
		t.Fatalf("after a second write of the same op, the count says %d, want 2", n)
	}
}
