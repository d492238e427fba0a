// Package feedrace is the scenario of guarantee G12 (docs/guarantees.md) shared by the authority's
// tests on every store: writers push new rows of one kind while a puller walks
// the feed in pages of 7, and every push of writer 0 is held open right after
// its version is stamped until the puller has finished a walk that began after
// the hold. A correct authority (stamp taken after the kind's lock) delivers
// every row exactly once; one that stamps before the lock skips rows.
package feedrace

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// Config describes one run.
type Config struct {
	Writers   int
	PerWriter int
	// Instances is how many authorities share the database (default 1):
	// writer w pushes through instance w%Instances and the puller's page p
	// goes through instance p%Instances.
	Instances int
	// New makes an instance with the given options (the scenario's clock,
	// hooks and the "item" document table); t's cleanup closes it.
	New func(t *testing.T, opts server.Options) *server.Service
	// Clock stamps the versions of every instance; a clock that does not move
	// leaves every ordering to the locking.
	Clock core.Clock
	// Broken switches the instances to the stamp-before-lock variant.
	Broken bool
}

// Result is what a run observed.
type Result struct {
	Pushed    []string       // ids of applied ops
	Seen      map[string]int // how often the puller saw each id
	Pages     int            // non-empty pages the puller served
	Holds     int            // stamped writers held open
	AfterHold int            // holds during which a later-stamped row committed
	All       []core.Record  // a fresh walk of the whole feed at the end
}

// Run runs the scenario.
func Run(t *testing.T, cfg Config) Result {
	t.Helper()
	ctx := context.Background()
	if cfg.Instances < 1 {
		cfg.Instances = 1
	}
	var (
		mu           sync.Mutex
		cond         = sync.NewCond(&mu)
		commits      int       // pushes answered
		maxCommitted time.Time // newest version answered
		othersDone   int       // writers other than 0 that finished
		allDone      bool
		pagesStarted int
		walkEndedAt  int // pagesStarted of the last page that ended a walk
		wantPage     int // holds waiting for the puller
		pullerDone   bool
		run          = Result{Seen: map[string]int{}}
	)
	hold := func(ctx context.Context, kind, id string, v time.Time, locked bool) {
		if !strings.HasPrefix(id, "w0-") {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		run.Holds++
		if !locked {
			// Wait for a writer that stamped later to commit; with the lock
			// held this could never happen, so only the broken variant waits.
			for !maxCommitted.After(v) && othersDone < cfg.Writers-1 {
				cond.Wait()
			}
			if maxCommitted.After(v) {
				run.AfterHold++
			}
		}
		start := pagesStarted
		wantPage++
		cond.Broadcast()
		for walkEndedAt <= start && !pullerDone {
			cond.Wait()
		}
		wantPage--
	}
	opts := server.Options{Tables: []core.Table{core.Documents("item")}, Clock: cfg.Clock,
		TokenSecret: []byte("feedrace"), Hooks: &server.Hooks{AfterStamp: hold, StampBeforeLock: cfg.Broken}}
	svcs := make([]*server.Service, cfg.Instances)
	for i := range svcs {
		svcs[i] = cfg.New(t, opts)
	}

	var wg sync.WaitGroup
	errs := make(chan error, cfg.Writers+1)
	for w := range cfg.Writers {
		svc := svcs[w%len(svcs)]
		wg.Go(func() {
			defer func() {
				mu.Lock()
				if w != 0 {
					othersDone++
				}
				cond.Broadcast()
				mu.Unlock()
			}()
			for i := range cfg.PerWriter {
				id := fmt.Sprintf("w%d-%04d", w, i)
				op := core.Op{OpID: id, Kind: "item", ID: id, Type: core.OpUpsert, Payload: []byte(`{"w":1}`)}
				res, err := svc.Push(ctx, []core.Op{op})
				if err != nil {
					errs <- err
					return
				}
				if res[0].Status != core.StatusApplied {
					errs <- fmt.Errorf("push %s: %v %s", id, res[0].Status, res[0].Reason)
					return
				}
				mu.Lock()
				commits++
				run.Pushed = append(run.Pushed, id)
				if v := res[0].Record.UpdatedAt; v.After(maxCommitted) {
					maxCommitted = v
				}
				cond.Broadcast()
				mu.Unlock()
			}
		})
	}
	pullerExit := make(chan struct{})
	go func() {
		defer close(pullerExit)
		defer func() {
			mu.Lock()
			pullerDone = true
			cond.Broadcast()
			mu.Unlock()
		}()
		var cur core.Cursor
		token := ""
		for {
			mu.Lock()
			pagesStarted++
			myPage := pagesStarted
			final := allDone
			seenCommits := commits
			mu.Unlock()
			// Page tokens and cursors carry across instances sharing the
			// database and the token secret.
			page, err := svcs[myPage%len(svcs)].Pull(ctx, core.PullRequest{Kind: "item", After: cur, PageToken: token, Limit: 7})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			for _, r := range page.Records {
				run.Seen[r.ID]++
				cur = core.Cursor{UpdatedAt: r.UpdatedAt, ID: r.ID}
			}
			if len(page.Records) > 0 {
				run.Pages++
			}
			token = page.NextPageToken
			if token == "" {
				walkEndedAt = myPage
				cond.Broadcast()
				if final {
					mu.Unlock()
					return
				}
				// Caught up: wait for a commit, a held writer, or the end.
				for commits == seenCommits && wantPage == 0 && !allDone {
					cond.Wait()
				}
			}
			mu.Unlock()
		}
	}()
	wg.Wait()
	mu.Lock()
	allDone = true
	cond.Broadcast()
	mu.Unlock()
	<-pullerExit
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	req := core.PullRequest{Kind: "item"}
	for {
		page, err := svcs[0].Pull(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		run.All = append(run.All, page.Records...)
		if page.NextPageToken == "" {
			break
		}
		req.PageToken = page.NextPageToken
	}
	return run
}

// RequireExactlyOnce fails t unless every pushed row reached the puller
// exactly once, over at least minPages non-empty pages, with versions
// strictly increasing along the feed.
func RequireExactlyOnce(t *testing.T, cfg Config, run Result, minPages int) {
	t.Helper()
	rows := len(run.Pushed)
	if rows != cfg.Writers*cfg.PerWriter || rows != len(run.All) || rows != cfg.Writers*run.Holds {
		t.Fatalf("%d rows pushed, %d in the feed, %d holds", rows, len(run.All), run.Holds)
	}
	if run.Pages < minPages {
		t.Fatalf("the puller served %d non-empty pages, want at least %d", run.Pages, minPages)
	}
	for _, id := range run.Pushed {
		if n := run.Seen[id]; n != 1 {
			t.Errorf("row %s reached the puller %d times, want exactly once", id, n)
		}
	}
	if len(run.Seen) != len(run.Pushed) {
		t.Errorf("the puller saw %d distinct rows, %d were pushed", len(run.Seen), len(run.Pushed))
	}
	for i := 1; i < len(run.All); i++ {
		if !run.All[i].UpdatedAt.After(run.All[i-1].UpdatedAt) {
			t.Fatalf("versions do not strictly increase: %v then %v", run.All[i-1].UpdatedAt, run.All[i].UpdatedAt)
		}
	}
}

// RequireCaught is the negative control: a run against the stamp-before-lock
// variant must have exercised the race and lost rows, or RequireExactlyOnce
// proves nothing.
func RequireCaught(t *testing.T, run Result) {
	t.Helper()
	if len(run.All) != len(run.Pushed) {
		t.Fatalf("%d rows in the feed, %d pushed", len(run.All), len(run.Pushed))
	}
	if run.AfterHold == 0 {
		t.Fatal("no later-stamped row committed during a hold: the scenario did not exercise the race")
	}
	skipped := 0
	for _, id := range run.Pushed {
		if run.Seen[id] == 0 {
			skipped++
		}
	}
	if skipped == 0 {
		t.Fatal("the stamp-before-lock authority lost no row: the G12 test cannot catch it")
	}
	t.Logf("stamp-before-lock: %d of %d rows skipped by the puller (%d holds with a later commit)", skipped, len(run.Pushed), run.AfterHold)
}
