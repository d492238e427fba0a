package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
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
	"github.com/offsync/offsync/internal/pgtest"
)

// failover is a loopback reverse proxy in front of one instance, as a load
// balancer is: replicas talk to it, and after the instance dies it sends
// them to another. Armed, it lets one push through to the instance, waits
// for the instance's answer (the push is committed) and then kills the
// instance with SIGKILL and drops the answer: the replica never learns
// whether its push was applied, and must send it again elsewhere.
type failover struct {
	target atomic.Pointer[url.URL]
	armed  atomic.Bool
	kill   func()      // SIGKILL to the instance, then point target elsewhere
	killed chan string // the path of the push whose answer was dropped
	srv    *httptest.Server
}

func newFailover(t *testing.T, to string) *failover {
	f := &failover{killed: make(chan string, 1)}
	u, err := url.Parse(to)
	if err != nil {
		t.Fatal(err)
	}
	f.target.Store(u)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(f.target.Load())
		},
		Transport:     f,
		FlushInterval: -1, // the event stream passes through unbuffered
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	f.srv = httptest.NewServer(rp)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *failover) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || r.Method != http.MethodPost || !f.armed.CompareAndSwap(true, false) {
		return resp, err
	}
	// The instance answered: whatever it applied is committed. It dies
	// before the replica reads a byte of the answer.
	resp.Body.Close()
	f.kill()
	f.killed <- r.URL.Path
	return nil, errors.New("failover: the instance was killed before it answered")
}

// appliedLog installs, in the authority's database, a trigger that logs
// every row version written to offsync_documents, with the op marker the
// test puts in each record ("m"): a marker logged twice is an op applied
// twice, a marker missing an op lost.
func appliedLog(t *testing.T, db *sql.DB) {
	t.Helper()
	for _, q := range []string{
		`CREATE TABLE applied_log (kind TEXT NOT NULL, id TEXT NOT NULL, marker TEXT)`,
		`CREATE FUNCTION log_applied() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN INSERT INTO applied_log VALUES (NEW.kind, NEW.id, NEW.data->>'m'); RETURN NEW; END $$`,
		`CREATE TRIGGER log_applied AFTER INSERT OR UPDATE ON offsync_documents
			FOR EACH ROW EXECUTE FUNCTION log_applied()`,
	} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

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
	appliedLog(t, db)

	notes := core.Documents("note")
	proxy := newFailover(t, inst[1].URL)
	proxy.kill = func() {
		_ = inst[1].cmd.Process.Signal(syscall.SIGKILL)
		<-inst[1].done
		u, _ := url.Parse(inst[0].URL)
		proxy.target.Store(u)
	}
	urls := []string{inst[0].URL, proxy.srv.URL, inst[2].URL}
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
						proxy.armed.Store(true) // every replica has pushed once
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
	case path := <-proxy.killed:
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
	applied := appliedCounts(t, ctx, db)
	for m, n := range applied {
		if !want[m] {
			t.Errorf("the authority wrote a row with marker %q that no op carried", m)
		}
		if n != 1 {
			t.Errorf("op %q applied %d times", m, n)
		}
	}
	for m := range want {
		if applied[m] == 0 {
			t.Errorf("op %q lost: the authority never applied it", m)
		}
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
	if n := appliedCounts(t, ctx, db)["hello"]; n != 2 {
		t.Fatalf("after a second write of the same op, the count says %d, want 2", n)
	}
}

// appliedCounts returns how many row versions the authority wrote with each
// op marker (the log of appliedLog).
func appliedCounts(t *testing.T, ctx context.Context, db *sql.DB) map[string]int {
	t.Helper()
	rows, err := db.QueryContext(ctx, `SELECT coalesce(marker, ''), count(*) FROM applied_log GROUP BY marker`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var m string
		var n int
		if err := rows.Scan(&m, &n); err != nil {
			t.Fatal(err)
		}
		out[m] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
