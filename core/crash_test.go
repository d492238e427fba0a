package core_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
)

// The crash points of DESIGN §9. The engine names three; the transport
// between the replica and the authority names the two around the request.
var crashPoints = []string{"after_local_commit", "after_request_sent", "after_authority_commit", "after_answer", "mid_page_apply"}

var applog = core.Documents("applog")

// crashWire calls the crash hook around each request to the authority;
// with a depth above 1 it carries that many pushes at once (core.Pipeliner).
type crashWire struct {
	inner core.Transport
	hook  func(string)
	depth int
}

func (c crashWire) PushDepth() int { return c.depth }

func (c crashWire) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	return c.inner.Pull(ctx, req)
}

func (c crashWire) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	c.hook("after_request_sent")
	res, err := c.inner.Push(ctx, ops)
	c.hook("after_authority_commit")
	return res, err
}

// openCrashWorld opens the authority and the replica of the crash test in
// dir. The authority logs every op it applies in the write's own
// transaction, so a second apply of one op shows in the log.
func openCrashWorld(ctx context.Context, dir string, hook func(string)) (*core.Engine, *server.Service, func(), error) {
	auth, err := sqlite.Open(ctx, filepath.Join(dir, "auth.db"), nil)
	if err != nil {
		return nil, nil, nil, err
	}
	var svc *server.Service
	svc, err = server.New(ctx, auth, &server.Options{
		Tables: []core.Table{notes, applog},
		Validate: func(ctx context.Context, _ core.Principal, op core.Op, _ *core.Record) error {
			return auth.Update(ctx, func(ctx context.Context, tx core.Tx) error {
				n := 0
				if prev, err := tx.Get(ctx, "applog", op.OpID); err == nil {
					m, _ := prev.Fields()
					v, _ := strconv.Atoi(fmt.Sprint(m["n"]))
					n = v
				}
				return tx.Put(ctx, core.Record{Kind: "applog", ID: op.OpID, UpdatedAt: t0,
					Data: []byte(fmt.Sprintf(`{"n":%d,"rec":%q}`, n+1, op.Kind+"/"+op.ID))})
			})
		},
	})
	if err != nil {
		return nil, nil, nil, err
	}
	rep, err := sqlite.Open(ctx, filepath.Join(dir, "replica.db"), nil)
	if err != nil {
		return nil, nil, nil, err
	}
	// OFFSYNC_CRASH_DEPTH > 1: pushes of two ops, that many in flight at
	// once, so that a crash finds several batches sent and unanswered.
	depth, _ := strconv.Atoi(os.Getenv("OFFSYNC_CRASH_DEPTH"))
	batch := 0
	if depth > 1 {
		batch = 2
	}
	eng, err := core.NewEngine(ctx, rep, crashWire{svc, hook, depth}, &core.Options{
		Tables: []core.Table{notes}, PageSize: 3, Checkpoint: hook, BatchSize: batch,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return eng, svc, func() { eng.Close(); svc.Close(); rep.Close(); auth.Close() }, nil
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("OFFSYNC_CRASH_DIR"); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashChild is the child process of TestCrashRecovery: it writes and syncs
// until the crash hook kills it at the named point.
func crashChild(dir string) {
	ctx := context.Background()
	point := os.Getenv("OFFSYNC_CRASH_POINT")
	hit, _ := strconv.Atoi(os.Getenv("OFFSYNC_CRASH_HIT"))
	var hits atomic.Int64 // pipelined pushes call the hook concurrently
	hook := func(p string) {
		if p == point {
			if hits.Add(1) == int64(hit) {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
	eng, _, closeAll, err := openCrashWorld(ctx, dir, hook)
	if err != nil {
		log.Fatal(err)
	}
	defer closeAll()
	docs := core.DocsFor(eng, notes)
	if point == "" { // the final run: drain
		for range 5 {
			_, _ = eng.Sync(ctx)
		}
		return
	}
	run := os.Getenv("OFFSYNC_CRASH_RUN")
	for i := range 12 {
		id := fmt.Sprintf("%s-%02d", run, i)
		if err := docs.Put(ctx, id, map[string]any{"i": i, "run": run}); err != nil {
			log.Fatal(err)
		}
		if err := docs.Put(ctx, "shared", map[string]any{"last": id}, core.Changed("last")); err != nil {
			log.Fatal(err)
		}
		if i%5 == 4 {
			if err := docs.Delete(ctx, fmt.Sprintf("%s-%02d", run, i-2)); err != nil {
				log.Fatal(err)
			}
		}
		if i%3 == 2 {
			_, _ = eng.Sync(ctx)
		}
	}
	_, _ = eng.Sync(ctx)
}

func TestCrashRecovery(t *testing.T) { crashRecovery(t, 1) }

// TestCrashRecoveryPipelined is TestCrashRecovery with three pushes of two
// ops in flight at once.
func TestCrashRecoveryPipelined(t *testing.T) { crashRecovery(t, 3) }

func crashRecovery(t *testing.T, depth int) {
	if testing.Short() || raceEnabled {
		// 26 child processes; the normal pass of ./scripts/test runs it.
		t.Skip("crash test: runs in the non-race, non-short pass")
	}
	t.Setenv("OFFSYNC_CRASH_DEPTH", strconv.Itoa(depth))
	dir := t.TempDir()
	kills := map[string]int{}
	runs := 0
	for _, point := range crashPoints {
		for hit := 1; kills[point] < 5 && hit <= 12; hit++ {
			runs++
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "OFFSYNC_CRASH_DIR="+dir, "OFFSYNC_CRASH_POINT="+point,
				"OFFSYNC_CRASH_HIT="+strconv.Itoa(hit), "OFFSYNC_CRASH_RUN="+fmt.Sprintf("r%02d", runs))
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
					kills[point]++
					continue
				}
			}
			if err != nil {
				t.Fatalf("child at %s #%d failed: %v\n%s", point, hit, err, out)
			}
		}
	}
	t.Logf("kills per crash point: %v (%d child runs)", kills, runs)
	for _, p := range crashPoints {
		if kills[p] < 5 {
			t.Errorf("crash point %s hit %d times, want at least 5", p, kills[p])
		}
	}
	// Restart without a crash and drain.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OFFSYNC_CRASH_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}

	ctx := context.Background()
	eng, svc, closeAll, err := openCrashWorld(ctx, dir, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	if pend, _ := eng.Pending(ctx); len(pend) != 0 {
		t.Fatalf("outbox not empty after the final sync: %v", pend)
	}
	local, err := eng.List(ctx, "note", core.ListOptions{IncludeDeleted: true})
	if err != nil {
		t.Fatal(err)
	}
	// Pushes of two ops reach the crash points sooner: fewer notes are
	// written before the children are killed.
	if least := 100 / min(depth, 2); len(local) < least {
		t.Fatalf("only %d local notes, want at least %d", len(local), least)
	}
	for _, l := range local {
		a, err := svc.Get(ctx, "note", l.ID)
		if err != nil {
			t.Fatalf("locally committed %s missing at the authority: %v", l.ID, err)
		}
		if a.Deleted() != l.Deleted() || (!a.Deleted() && string(a.Data) != string(l.Data)) || !a.UpdatedAt.Equal(l.UpdatedAt) {
			t.Errorf("%s: local %s deleted=%v @%v, authority %s deleted=%v @%v", l.ID, l.Data, l.Deleted(), l.UpdatedAt, a.Data, a.Deleted(), a.UpdatedAt)
		}
	}
	// No op applied twice: each op ID appears once in the authority's log.
	auth, err := sqlite.Open(ctx, filepath.Join(dir, "auth.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	if err := auth.Register(ctx, applog); err != nil {
		t.Fatal(err)
	}
	err = auth.View(ctx, func(ctx context.Context, tx core.Tx) error {
		logs, err := tx.List(ctx, "applog", core.ListOptions{})
		if err != nil {
			return err
		}
		for _, l := range logs {
			m, _ := l.Fields()
			if fmt.Sprint(m["n"]) != "1" {
				t.Errorf("op %s (%v) applied %v times", l.ID, m["rec"], m["n"])
			}
		}
		t.Logf("%d ops applied, %d notes", len(logs), len(local))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
