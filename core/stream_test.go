package core_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
	"go.uber.org/goleak"
)

// walkWire sits between an engine and a real authority (a server.Service),
// like a network would, and sees the walks of "note": the pulls of a walk
// page by page, or the pages of a stream. As *walkWire it is a transport
// without streams (the engine pulls page by page); streamingWire is the
// same wire with the authority's PageStreamer power.
type walkWire struct {
	svc *server.Service

	mu    sync.Mutex
	reqs  []core.PullRequest // the pulls made, or the streams opened, for "note"
	pageN int                // the page of the walk page by page
	ended []error            // how each stream of "note" ended
	// page, when set, sees the kth page of each walk or stream of "note"
	// before the engine: it may change it, fail the pull or the stream
	// (err), or end the stream after it without an error (stop).
	page func(k int, p *core.Page) (stop bool, err error)

	streams atomic.Int64 // streams opened, every kind
	active  atomic.Int64 // streams running
}

func (w *walkWire) set(page func(k int, p *core.Page) (bool, error)) {
	w.mu.Lock()
	w.page = page
	w.mu.Unlock()
}

func (w *walkWire) requests() []core.PullRequest {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.reqs)
}

func (w *walkWire) streamEnds() []error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.ended)
}

// see hands page k of "note" to the hook.
func (w *walkWire) see(req core.PullRequest, k int, p *core.Page) (bool, error) {
	w.mu.Lock()
	f := w.page
	w.mu.Unlock()
	if req.Kind != "note" || f == nil {
		return false, nil
	}
	return f(k, p)
}

func (w *walkWire) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	w.mu.Lock()
	if req.Kind == "note" {
		w.reqs = append(w.reqs, req)
		if req.PageToken == "" {
			w.pageN = 0
		}
		w.pageN++
	}
	k := w.pageN
	w.mu.Unlock()
	p, err := w.svc.Pull(ctx, req)
	if err != nil {
		return p, err
	}
	if _, err := w.see(req, k, &p); err != nil {
		return core.Page{}, err
	}
	return p, nil
}

func (w *walkWire) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	return w.svc.Push(ctx, ops)
}

// streamingWire is the wire with streams.
type streamingWire struct{ *walkWire }

var errStopped = errors.New("test: the wire ended the stream")

func (w streamingWire) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	w.streams.Add(1)
	w.active.Add(1)
	defer w.active.Add(-1)
	if req.Kind == "note" {
		w.mu.Lock()
		w.reqs = append(w.reqs, req)
		w.mu.Unlock()
	}
	k := 0
	err := w.svc.PullPages(ctx, req, func(p core.Page) error {
		k++
		stop, err := w.see(req, k, &p)
		if err != nil {
			return err
		}
		if err := yield(p); err != nil {
			return err
		}
		if stop {
			return errStopped
		}
		return nil
	})
	if errors.Is(err, errStopped) {
		err = nil
	}
	if req.Kind == "note" {
		w.mu.Lock()
		w.ended = append(w.ended, err)
		w.mu.Unlock()
	}
	return err
}

// bothWalks runs fn over a wire with streams and over the same wire
// without them, checking that the engine streamed exactly when it could.
func bothWalks(t *testing.T, opts *server.Options, fn func(t *testing.T, svc *server.Service, w *walkWire, tr core.Transport)) {
	for _, streamed := range []bool{true, false} {
		name := "pages"
		if streamed {
			name = "stream"
		}
		t.Run(name, func(t *testing.T) {
			svc := newAuthority(t, opts)
			w := &walkWire{svc: svc}
			var tr core.Transport = w
			if streamed {
				tr = streamingWire{w}
			}
			fn(t, svc, w, tr)
			if n := w.streams.Load(); streamed != (n > 0) {
				t.Errorf("the engine opened %d streams over a transport that streams=%v", n, streamed)
			}
			if n := w.active.Load(); n != 0 {
				t.Errorf("%d streams still running after the test", n)
			}
		})
	}
}

// putNotes writes notes n<from>..n<to-1> through a replica of svc.
func putNotes(t *testing.T, svc *server.Service, from, to int) {
	t.Helper()
	w := newReplica(t, svc, nil)
	for i := from; i < to; i++ {
		if err := w.notes.Put(t.Context(), fmt.Sprintf("n%02d", i), map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, w)
}

// sameNotes fails unless r holds the authority's live notes, each at its
// version.
func sameNotes(t *testing.T, r *replica, svc *server.Service) {
	t.Helper()
	want := map[string]time.Time{}
	req := core.PullRequest{Kind: "note", Limit: 1000}
	for {
		p, err := svc.Pull(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range p.Records {
			if rec.Deleted() {
				delete(want, rec.ID)
			} else {
				want[rec.ID] = rec.UpdatedAt
			}
		}
		if p.NextPageToken == "" {
			break
		}
		req.PageToken = p.NextPageToken
	}
	got, err := r.eng.List(t.Context(), "note", core.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var diffs []string
	for _, rec := range got {
		if v, ok := want[rec.ID]; !ok || !v.Equal(rec.UpdatedAt) {
			diffs = append(diffs, fmt.Sprintf("%s@%s on the replica (authority: %v)", rec.ID, core.FormatTime(rec.UpdatedAt), v))
		}
		delete(want, rec.ID)
	}
	for id := range want {
		diffs = append(diffs, id+" missing on the replica")
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Fatalf("the replica's notes differ from the authority's: %s", strings.Join(diffs, "; "))
	}
}

func cursorOf(t *testing.T, r *replica) core.Cursor {
	t.Helper()
	c, err := r.eng.Cursor(t.Context(), "note")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestStreamedWalk: a walk of many pages, tombstones included, applies
// every page over a stream as over pulls. Over a stream the engine holds
// back the authority: it serves page k only once the engine took page k-2,
// so at most three pages beyond those whose apply began (the one taken,
// the one in the engine's channel, the one waiting to go in), even while
// an apply is held and the authority could run ahead.
func TestStreamedWalk(t *testing.T) {
	bothWalks(t, nil, func(t *testing.T, svc *server.Service, w *walkWire, tr core.Transport) {
		putNotes(t, svc, 0, 23)
		other := newReplica(t, svc, nil)
		mustSync(t, other)
		for _, id := range []string{"n03", "n10", "n19"} {
			if err := other.notes.Delete(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}
		mustSync(t, other)

		var applied atomic.Int64
		hold, held := make(chan struct{}), make(chan struct{})
		r := newReplica(t, tr, &core.Options{PageSize: 2, Checkpoint: func(p string) {
			if p != "mid_page_apply" {
				return
			}
			if applied.Add(1) == 1 {
				close(held)
				<-hold
			}
		}})
		var yielded, worst atomic.Int64
		w.set(func(k int, p *core.Page) (bool, error) {
			// The kth page is served: the engine took page k-2 at least,
			// and applied page k-3 at least (it applies one page at a
			// time, in order).
			n := yielded.Add(1)
			if ahead := n - applied.Load(); ahead > worst.Load() {
				worst.Store(ahead)
			}
			return false, nil
		})
		sub := r.eng.Subscribe(256)
		done := make(chan error, 1)
		go func() {
			_, err := r.eng.Sync(context.Background(), core.PullKinds("note"))
			done <- err
		}()
		<-held
		// The first page's apply is held: let the authority serve whatever
		// the engine asks meanwhile.
		for range 50 {
			if _, err := svc.Pull(t.Context(), core.PullRequest{Kind: "todo", Limit: 1}); err != nil {
				t.Fatal(err)
			}
		}
		whileHeld := yielded.Load()
		close(hold)
		if err := <-done; err != nil {
			t.Fatalf("sync: %v", err)
		}
		sameNotes(t, r, svc)
		if _, ok := tr.(core.PageStreamer); ok {
			if whileHeld > 3 || worst.Load() > 3 {
				t.Fatalf("over a stream the engine held %d pages while it applied the first, at worst %d pages beyond those applied: it must hold back the stream", whileHeld, worst.Load())
			}
			if n := len(w.requests()); n != 1 {
				t.Fatalf("one walk made %d streams", n)
			}
		} else if n := len(w.requests()); n != 12 {
			t.Fatalf("a walk of 23 rows in pages of 2 made %d pulls, want 12", n)
		}
		pages, deletes := 0, 0
		for _, ev := range eventsOf[core.PagePulled](events(sub)) {
			if ev.Kind == "note" {
				pages++
				deletes += ev.Deletes
			}
		}
		if pages != 12 || deletes != 3 {
			t.Fatalf("%d pages applied with %d tombstones, want 12 pages and 3", pages, deletes)
		}
	})
}

// TestStreamedWalkReset: a walk whose next page is past the tombstones the
// authority collected meanwhile (its token is reset_required) restarts as
// a clearing resync from the start, over a new stream, and ends with the
// authority's rows: the collected delete included.
func TestStreamedWalkReset(t *testing.T) {
	clock := core.NewManualClock(t0)
	opts := &server.Options{Clock: clock, TombstoneRetention: 24 * time.Hour}
	bothWalks(t, opts, func(t *testing.T, svc *server.Service, w *walkWire, tr core.Transport) {
		putNotes(t, svc, 0, 6)
		r := newReplica(t, tr, &core.Options{PageSize: 2})
		mustSync(t, r)
		putNotes(t, svc, 10, 16)
		other := newReplica(t, svc, nil)
		mustSync(t, other)
		if err := other.notes.Delete(t.Context(), "n02"); err != nil {
			t.Fatal(err)
		}
		mustSync(t, other)
		from, before, beforeEnds := cursorOf(t, r), len(w.requests()), len(w.streamEnds())
		collected := false
		w.set(func(k int, p *core.Page) (bool, error) {
			if k == 1 && !collected {
				collected = true
				// The authority collects the delete of n02 while the
				// replica has the walk's first page.
				clock.Advance(48 * time.Hour)
				if _, err := svc.Collect(context.Background()); err != nil {
					return false, err
				}
			}
			return false, nil
		})
		sub := r.eng.Subscribe(256)
		mustSync(t, r, core.PullKinds("note"))
		if _, err := r.eng.Get(t.Context(), "note", "n02"); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("n02, deleted and collected at the authority during the walk, is still on the replica (%v)", err)
		}
		sameNotes(t, r, svc)
		rs := resyncs(events(sub))
		if len(rs) != 1 || rs[0].Reason != "reset_required" || !rs[0].ClearData {
			t.Fatalf("resyncs %+v, want one clearing resync for reset_required", rs)
		}
		reqs := w.requests()[before:]
		restarted := slices.IndexFunc(reqs, func(r core.PullRequest) bool { return r.After.IsZero() && r.PageToken == "" })
		if reqs[0].After != from || restarted < 1 {
			t.Fatalf("requests %+v: want the walk from the cursor, then one from the start", reqs)
		}
		if _, ok := tr.(core.PageStreamer); ok {
			ends := w.streamEnds()[beforeEnds:]
			if len(reqs) != 2 || len(ends) != 2 || !errors.Is(ends[0], core.ErrResetRequired) || ends[1] != nil {
				t.Fatalf("streams ended with %v, want reset_required then the whole walk", ends)
			}
		}
	})
}

// TestStreamedWalkApplyError: a page the engine refuses mid-walk (out of
// order) fails the Sync; the stream is stopped and has ended when Sync
// returns (no goroutine left), the pages before it stay applied, and the
// next Sync goes on from the cursor.
func TestStreamedWalkApplyError(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, leaks) }) // after the engines and stores closed
	bothWalks(t, nil, func(t *testing.T, svc *server.Service, w *walkWire, tr core.Transport) {
		putNotes(t, svc, 0, 12)
		r := newReplica(t, tr, &core.Options{PageSize: 3})
		w.set(func(k int, p *core.Page) (bool, error) {
			if k == 2 {
				slices.Reverse(p.Records)
			}
			return false, nil
		})
		_, err := r.eng.Sync(t.Context(), core.PullKinds("note"))
		if !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("sync over a page out of order: %v, want ErrInvalid", err)
		}
		if n := w.active.Load(); n != 0 {
			t.Fatalf("%d streams still running when Sync returned", n)
		}
		if ends := w.streamEnds(); len(ends) > 0 && !errors.Is(ends[0], context.Canceled) {
			t.Fatalf("the stream ended with %v, want the engine's cancel", ends[0])
		}
		rows, err := r.eng.List(t.Context(), "note", core.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 {
			t.Fatalf("%d rows after a walk refused at its second page, want the first page's 3", len(rows))
		}
		c, before := cursorOf(t, r), len(w.requests())
		w.set(nil)
		mustSync(t, r, core.PullKinds("note"))
		sameNotes(t, r, svc)
		if next := w.requests()[before]; next.After != c || next.PageToken != "" {
			t.Fatalf("the next walk began at %+v, want the cursor %+v", next, c)
		}
	})
}

// TestStreamEndsEarly: a stream that returns nil before a page without a
// token fails the Sync with an error wrapping core.ErrUnavailable; the walk
// is not finished (a first walk's list of rows to remove is kept: the
// ghost the authority never had stays), and the next Sync walks on from
// the cursor and finishes it. The control: the same stream ending at a
// page without a token is a finished walk, which removes the ghost.
func TestStreamEndsEarly(t *testing.T) {
	for _, last := range []bool{false, true} {
		t.Run(fmt.Sprintf("last page=%v", last), func(t *testing.T) {
			svc := newAuthority(t, nil)
			putNotes(t, svc, 0, 10)
			w := &walkWire{svc: svc}
			r := newReplica(t, streamingWire{w}, &core.Options{PageSize: 3})
			ghost(t, r)
			w.set(func(k int, p *core.Page) (bool, error) {
				if k != 2 {
					return false, nil
				}
				if last {
					p.NextPageToken = ""
				}
				return true, nil
			})
			sub := r.eng.Subscribe(256)
			_, err := r.eng.Sync(t.Context(), core.PullKinds("note"))
			_, gerr := r.eng.Get(t.Context(), "note", "ghost")
			rows, lerr := r.eng.List(t.Context(), "note", core.ListOptions{})
			if lerr != nil {
				t.Fatal(lerr)
			}
			if last {
				if err != nil || !errors.Is(gerr, core.ErrNotFound) || len(rows) != 6 {
					t.Fatalf("a stream ended at a last page: sync %v, ghost %v, %d rows; want a finished walk of 6 rows without the ghost", err, gerr, len(rows))
				}
				return
			}
			if !errors.Is(err, core.ErrUnavailable) {
				t.Fatalf("a stream that ended before its last page: sync returned %v, want ErrUnavailable", err)
			}
			if gerr != nil || len(rows) != 7 {
				t.Fatalf("after a stream that ended early: ghost %v, %d rows; want the ghost kept (the walk is not finished) and 6 rows pulled", gerr, len(rows))
			}
			errs := eventsOf[core.SyncError](events(sub))
			if len(errs) != 1 || !errs[0].WillRetry {
				t.Fatalf("sync errors %+v, want one the engine retries", errs)
			}
			c := cursorOf(t, r)
			w.set(nil)
			mustSync(t, r, core.PullKinds("note"))
			if reqs := w.requests(); len(reqs) != 2 || reqs[1].After != c {
				t.Fatalf("streams opened %+v, want the second from the cursor %+v", reqs, c)
			}
			if _, err := r.eng.Get(t.Context(), "note", "ghost"); !errors.Is(err, core.ErrNotFound) {
				t.Fatalf("the finished walk kept the ghost: %v", err)
			}
			sameNotes(t, r, svc)
		})
	}
}

// TestBadCursorTokenRetried: over a transport without streams, a page
// token the authority no longer reads (ErrBadCursor on a request carrying
// a token) restarts the walk from the last applied row without the token;
// the control: ErrBadCursor on a request without a token fails the Sync.
func TestBadCursorTokenRetried(t *testing.T) {
	svc := newAuthority(t, nil)
	putNotes(t, svc, 0, 10)
	w := &walkWire{svc: svc}
	r := newReplica(t, w, &core.Options{PageSize: 3})
	refused := 0
	w.set(func(k int, p *core.Page) (bool, error) {
		if k == 2 && refused == 0 {
			refused++
			return false, fmt.Errorf("test: token from another instance: %w", core.ErrBadCursor)
		}
		return false, nil
	})
	mustSync(t, r, core.PullKinds("note"))
	sameNotes(t, r, svc)
	reqs := w.requests()
	// Page 1, page 2 refused, page 2 again from the cursor without a token.
	if len(reqs) < 3 || reqs[1].PageToken == "" || reqs[2].PageToken != "" || reqs[2].After != reqs[1].After {
		t.Fatalf("requests %+v: want the refused token's request retried from its cursor without a token", reqs)
	}
	if w.streams.Load() != 0 {
		t.Fatal("the engine streamed over a transport without streams")
	}

	// The control: a first page refused has nothing to retry.
	svc2 := newAuthority(t, nil)
	putNotes(t, svc2, 0, 4)
	w2 := &walkWire{svc: svc2}
	r2 := newReplica(t, w2, &core.Options{PageSize: 3})
	w2.set(func(k int, p *core.Page) (bool, error) {
		return false, fmt.Errorf("test: %w", core.ErrBadCursor)
	})
	if _, err := r2.eng.Sync(t.Context(), core.PullKinds("note")); !errors.Is(err, core.ErrBadCursor) {
		t.Fatalf("a refused walk from the cursor: %v, want ErrBadCursor", err)
	}
	if n := len(w2.requests()); n != 1 {
		t.Fatalf("%d requests for a walk refused at its first page, want 1", n)
	}
}
