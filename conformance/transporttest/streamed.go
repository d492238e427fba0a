package transporttest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// streamAhead is how many pages beyond those yielded an authority may have
// served while a stream's yield is blocked: the pages in the wire's windows
// and buffers (a credit window, HTTP/2's flow control, the client's
// queue), and the one the authority holds. The flow control check uses
// pages of streamPadBytes, so that a window counted in bytes (HTTP/2
// starts at 64 KiB) holds a few of them.
const (
	streamAhead    = 16
	streamPadBytes = 32 << 10
	flowPages      = 3 * streamAhead // a walk much longer than the bound
)

// TestStreamedPages: a client that is a core.PageStreamer keeps the
// contract of PullPages (core/transport.go). Over a bare client: the pages
// of a stream are those of Pull's walk page by page over the same data
// (several pages, tombstones, from the start, from a cursor, at the end),
// and each page's token continues the walk with Pull; yield's error is
// returned and stops the stream; a ctx cancelled mid-walk ends it with
// ctx's error within a bounded number of pages; an unknown kind fails like
// Pull with nothing yielded; a cursor older than the collected tombstones
// is core.ErrResetRequired, nothing yielded; and while yield is blocked
// the authority serves at most streamAhead pages beyond those yielded (its
// page counter, server.Service.Stats). Then, in every world (faults
// included, with stream faults of its own: a stream dropped, cut, ended
// early), replicas whose engine streams their walks end equal to the
// authority.
func TestStreamedPages(t *testing.T, h Harness) {
	probe := newWorld(t, h, modeClean, nil)
	if c := h.NewClient(t, probe.svc, ClientOptions{}); !is[core.PageStreamer](c) {
		t.Skipf("%T does not stream a walk's pages (it is not a core.PageStreamer): the engine pulls over it page by page", c)
	}
	t.Run("Contract", func(t *testing.T) { streamContract(t, h) })
	t.Run("ResetRequired", func(t *testing.T) { streamReset(t, h) })
	t.Run("FlowControl", func(t *testing.T) { streamFlowControl(t, h) })
	t.Run("Engine", func(t *testing.T) { worlds(t, h, nil, streamedSyncs) })
}

// streamOf returns a bare client of w's authority as a PageStreamer.
func streamOf(t *testing.T, w *world) (core.Transport, core.PageStreamer) {
	t.Helper()
	c := w.h.NewClient(t, w.svc, ClientOptions{})
	ps, ok := c.(core.PageStreamer)
	if !ok {
		t.Fatalf("%T is not a core.PageStreamer in this world, but it was in another", c)
	}
	return c, ps
}

// stream collects the pages of a stream.
func stream(ctx context.Context, ps core.PageStreamer, req core.PullRequest) ([]core.Page, error) {
	var pages []core.Page
	err := ps.PullPages(ctx, req, func(p core.Page) error {
		pages = append(pages, p)
		return nil
	})
	return pages, err
}

// pullPages collects the pages of Pull's walk page by page.
func pullPages(t *testing.T, c core.Transport, req core.PullRequest) []core.Page {
	t.Helper()
	var pages []core.Page
	for {
		p, err := c.Pull(t.Context(), req)
		if err != nil {
			t.Fatalf("pull %+v: %v", req, err)
		}
		pages = append(pages, p)
		if p.NextPageToken == "" || len(p.Records) == 0 {
			return pages
		}
		req.After, req.PageToken = lastCursor(p), p.NextPageToken
	}
}

func lastCursor(p core.Page) core.Cursor {
	last := p.Records[len(p.Records)-1]
	return core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
}

// samePage describes how two pages differ: records (ids, versions,
// tombstones, data), whether a token follows, and Remaining.
func samePage(a, b core.Page) string {
	var diffs []string
	if len(a.Records) != len(b.Records) {
		diffs = append(diffs, fmt.Sprintf("%d records vs %d", len(a.Records), len(b.Records)))
	} else {
		for i := range a.Records {
			x, y := a.Records[i], b.Records[i]
			if x.ID != y.ID || !x.UpdatedAt.Equal(y.UpdatedAt) || x.Deleted() != y.Deleted() || (!x.Deleted() && !sameJSON(x.Data, y.Data)) {
				diffs = append(diffs, fmt.Sprintf("record %d: %s@%s deleted=%v vs %s@%s deleted=%v", i,
					x.ID, core.FormatTime(x.UpdatedAt), x.Deleted(), y.ID, core.FormatTime(y.UpdatedAt), y.Deleted()))
			}
		}
	}
	if (a.NextPageToken == "") != (b.NextPageToken == "") {
		diffs = append(diffs, fmt.Sprintf("token %q vs %q", a.NextPageToken, b.NextPageToken))
	}
	if a.Remaining != b.Remaining {
		diffs = append(diffs, fmt.Sprintf("remaining %d vs %d", a.Remaining, b.Remaining))
	}
	return strings.Join(diffs, "; ")
}

// samePages fails where a stream's pages differ from Pull's walk.
func samePages(t *testing.T, what string, streamed, pulled []core.Page) {
	t.Helper()
	if len(streamed) != len(pulled) {
		t.Fatalf("%s: the stream yielded %d pages, Pull's walk has %d", what, len(streamed), len(pulled))
	}
	for i := range streamed {
		if d := samePage(streamed[i], pulled[i]); d != "" {
			t.Errorf("%s: page %d differs (stream vs Pull): %s", what, i+1, d)
		}
	}
}

// putNotes writes notes at the authority directly (the transport under
// test only reads them): ids prefix<from>..prefix<to-1>, in the given round
// of writes (the ops and their "w" are unique per round), each with pad
// bytes of padding.
func putNotes(t *testing.T, svc *server.Service, prefix string, round, from, to, pad int) {
	t.Helper()
	var ops []core.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		for _, r := range push(t, svc, ops) {
			if r.Status != core.StatusApplied {
				t.Fatalf("write at the authority: %s %s %s", r.OpID, r.Status, r.Reason)
			}
		}
		ops = nil
	}
	for i := from; i < to; i++ {
		id := fmt.Sprintf("%s%02d", prefix, i)
		w := fmt.Sprintf("%s-%d-%d", prefix, round, i)
		payload := fmt.Appendf(nil, `{"w":%q,"i":%d,"pad":%q}`, w, i, strings.Repeat("x", pad))
		ops = append(ops, core.Op{OpID: "op-" + w, Kind: NoteKind, ID: id, Type: core.OpUpsert, Payload: payload, Force: true})
		if len(ops) == 8 {
			flush()
		}
	}
	flush()
}

func deleteNotes(t *testing.T, svc *server.Service, ids ...string) {
	t.Helper()
	var ops []core.Op
	for _, id := range ids {
		ops = append(ops, core.Op{OpID: "del-" + id, Kind: NoteKind, ID: id, Type: core.OpDelete, Force: true})
	}
	for _, r := range push(t, svc, ops) {
		if r.Status != core.StatusApplied {
			t.Fatalf("delete at the authority: %s %s", r.OpID, r.Status)
		}
	}
}

func streamContract(t *testing.T, h Harness) {
	w := newWorld(t, h, modeClean, nil)
	putNotes(t, w.svc, "s", 1, 0, 30, 0)
	// Later versions of s00..s05 among the tombstones, over several pages.
	deleteNotes(t, w.svc, "s07", "s11")
	putNotes(t, w.svc, "s", 2, 0, 3, 10)
	deleteNotes(t, w.svc, "s12", "s26")
	putNotes(t, w.svc, "s", 2, 3, 6, 10)
	c, ps := streamOf(t, w)
	ctx := t.Context()

	// The pages of a stream are those of Pull's walk, and each page's token
	// continues the walk with Pull.
	req := core.PullRequest{Kind: NoteKind, Limit: 4}
	pulled := pullPages(t, c, req)
	if len(pulled) < 8 {
		t.Fatalf("Pull's walk of 30 rows with limit 4 has %d pages", len(pulled))
	}
	streamed, err := stream(ctx, ps, req)
	if err != nil {
		t.Fatalf("a stream from the start: %v", err)
	}
	samePages(t, "from the start", streamed, pulled)
	tombstones := 0
	for i, p := range streamed {
		for _, r := range p.Records {
			if r.Deleted() {
				tombstones++
			}
		}
		if p.NextPageToken == "" || i+1 >= len(streamed) {
			continue
		}
		if len(p.Records) == 0 {
			t.Errorf("the stream's page %d has a token and no records", i+1)
			continue
		}
		next, err := c.Pull(ctx, core.PullRequest{Kind: NoteKind, Limit: 4, After: lastCursor(p), PageToken: p.NextPageToken})
		if err != nil {
			t.Fatalf("Pull with the token of the stream's page %d: %v", i+1, err)
		}
		if d := samePage(next, streamed[i+1]); d != "" {
			t.Errorf("Pull with the token of the stream's page %d does not answer its page %d (Pull vs stream): %s", i+1, i+2, d)
		}
	}
	if tombstones != 4 {
		t.Errorf("the stream brought %d tombstones, want 4", tombstones)
	}
	mid := core.PullRequest{Kind: NoteKind, Limit: 3, After: lastCursor(pulled[2])}
	streamed, err = stream(ctx, ps, mid)
	if err != nil {
		t.Fatalf("a stream from a cursor: %v", err)
	}
	samePages(t, "from a cursor", streamed, pullPages(t, c, mid))
	end := core.PullRequest{Kind: NoteKind, After: lastCursor(pulled[len(pulled)-2])}
	if p := pulled[len(pulled)-1]; len(p.Records) > 0 {
		end.After = lastCursor(p)
	}
	streamed, err = stream(ctx, ps, end)
	if err != nil {
		t.Fatalf("a stream from the end of the feed: %v", err)
	}
	samePages(t, "from the end", streamed, pullPages(t, c, end))

	// yield's error is returned as soon as yield fails, and ends the stream.
	errCaller := errors.New("transporttest: the caller stops the stream")
	calls := 0
	err = ps.PullPages(ctx, req, func(core.Page) error {
		calls++
		if calls == 2 {
			return errCaller
		}
		return nil
	})
	if !errors.Is(err, errCaller) || calls != 2 {
		t.Errorf("a yield that failed at the second page: PullPages returned %v after %d yields, want yield's error after 2", err, calls)
	}

	// ctx cancelled mid-walk: ctx's error, within a bounded number of
	// pages (a walk of a page per row).
	one := core.PullRequest{Kind: NoteKind, Limit: 1}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	calls = 0
	err = ps.PullPages(cctx, one, func(core.Page) error {
		if calls++; calls == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("a stream whose ctx was cancelled at its second page: %v, want an error wrapping context.Canceled", err)
	}
	if calls > 2+streamAhead {
		t.Errorf("a stream whose ctx was cancelled at its second page yielded %d pages: it did not stop", calls)
	}

	// An unknown kind fails as Pull does, with nothing yielded.
	_, perr := c.Pull(ctx, core.PullRequest{Kind: "tt_no_such_kind"})
	got, err := stream(ctx, ps, core.PullRequest{Kind: "tt_no_such_kind"})
	if !errors.Is(err, core.ErrUnknownKind) || !errors.Is(perr, core.ErrUnknownKind) || len(got) != 0 {
		t.Errorf("an unknown kind: the stream yielded %d pages and returned %v (Pull returned %v), want core.ErrUnknownKind and no page", len(got), err, perr)
	}

	// After all that, the client still streams a whole walk.
	streamed, err = stream(ctx, ps, req)
	if err != nil {
		t.Fatalf("a stream after the stopped ones: %v", err)
	}
	samePages(t, "after the stopped streams", streamed, pulled)
}

func streamReset(t *testing.T, h Harness) {
	clock := core.NewManualClock(t0)
	w := newWorld(t, h, modeClean, func(o *server.Options) {
		o.Clock = clock
		o.TombstoneRetention = 24 * time.Hour
	})
	putNotes(t, w.svc, "r", 1, 0, 6, 0)
	c, ps := streamOf(t, w)
	before := pullPages(t, c, core.PullRequest{Kind: NoteKind})
	old := lastCursor(before[0])
	deleteNotes(t, w.svc, "r02")
	clock.Advance(48 * time.Hour)
	if _, err := w.svc.Collect(t.Context()); err != nil {
		t.Fatalf("collect: %v", err)
	}
	got, err := stream(t.Context(), ps, core.PullRequest{Kind: NoteKind, After: old, Limit: 2})
	if !errors.Is(err, core.ErrResetRequired) || len(got) != 0 {
		t.Fatalf("a stream after a cursor older than the collected tombstones: %d pages and %v, want core.ErrResetRequired and no page", len(got), err)
	}
	req := core.PullRequest{Kind: NoteKind, Limit: 2}
	streamed, err := stream(t.Context(), ps, req)
	if err != nil {
		t.Fatalf("a stream from the start after a collection: %v, want pages (a zero cursor is never reset)", err)
	}
	samePages(t, "from the start after a collection", streamed, pullPages(t, c, req))
}

func streamFlowControl(t *testing.T, h Harness) {
	w := newWorld(t, h, modeClean, nil)
	putNotes(t, w.svc, "f", 1, 0, flowPages, streamPadBytes)
	_, ps := streamOf(t, w)
	other := h.NewClient(t, w.svc, ClientOptions{})
	served := func() uint64 { return w.svc.Stats().Kinds[NoteKind].Pages }
	base := served()

	const heldAt = 2
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	yielded := 0
	go func() {
		done <- ps.PullPages(t.Context(), core.PullRequest{Kind: NoteKind, Limit: 1}, func(core.Page) error {
			if yielded++; yielded == heldAt {
				close(held)
				<-release
			}
			return nil
		})
	}()
	select {
	case <-held:
	case err := <-done:
		t.Fatalf("the stream ended before its second page: %v", err)
	}
	// While yield is blocked, give the authority every chance to run
	// ahead: round trips of another client, three per page of the walk.
	for i := range 3 * flowPages {
		if _, err := other.Pull(t.Context(), core.PullRequest{Kind: logKind, Limit: 1}); err != nil {
			close(release)
			<-done
			t.Fatalf("a pull of another client while a stream is held: %v", err)
		}
		if n := served() - base; n > heldAt+streamAhead {
			close(release)
			<-done
			t.Fatalf("while yield was blocked at page %d, the authority served %d pages of the stream (after %d round trips of another client): a stream must hold back the authority (flow control), at most %d pages ahead", heldAt, n, i+1, streamAhead)
		}
	}
	t.Logf("while yield was blocked at page %d, the authority served %d pages of the stream", heldAt, served()-base)
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("the stream, released: %v", err)
	}
	if yielded != flowPages || served()-base != flowPages {
		t.Fatalf("the stream yielded %d pages and the authority served %d, want %d each", yielded, served()-base, flowPages)
	}
}

// streamedSyncs: replicas whose engine streams its walks, through the
// world's faults and stream faults of their own, end equal to the
// authority.
func streamedSyncs(t *testing.T, w *world) {
	if !is[core.PageStreamer](w.client("")) {
		t.Fatalf("the %s world's client is not a core.PageStreamer: its wrapper lost the power", w.mode)
	}
	var pages atomic.Int64 // pages of replica c's walks that came in streams
	inj, err := faults.New(faults.Options{Seed: seedOf(t.Name()), Rules: []faults.Rule{
		{Fault: faults.Delay, Delay: time.Nanosecond, Match: func(c faults.Call) bool {
			if c.StreamPage > 0 {
				pages.Add(1)
			}
			return false
		}},
		{Fault: faults.DropRequest, Method: faults.Pull, Match: streamPage(1), Times: 1},
		{Fault: faults.CutPage, Method: faults.Pull, Match: streamPage(3), Times: 1},
		{Fault: faults.DropRequest, Method: faults.Pull, Match: streamPage(4), Times: 1},
		{Fault: faults.ShortPage, Method: faults.Pull, Match: streamPage(2), Times: 1, Keep: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := w.replica("a", replicaOptions{})
	b := w.replica("b", replicaOptions{pageSize: 3})
	c := w.replica("c", replicaOptions{pageSize: 2, wrap: func(tr core.Transport) core.Transport { return faults.Wrap(tr, inj) }})
	for i := range 25 {
		a.put(t, fmt.Sprintf("e%02d", i), map[string]any{"w": writeID("a", i), "i": i})
	}
	w.sync(t, a)
	a.del(t, "e04")
	a.del(t, "e17")
	a.put(t, "e09", map[string]any{"w": writeID("a", 100)})
	w.sync(t, a)
	w.syncUntilConverged(t, b, c)
	// An incremental walk from the replicas' cursors.
	for i := range 8 {
		a.put(t, fmt.Sprintf("e%02d", i*3), map[string]any{"w": writeID("a", 200+i)})
	}
	a.del(t, "e10")
	w.sync(t, a)
	w.syncUntilConverged(t, b, c)
	if pages.Load() == 0 {
		t.Errorf("replica c's engine walked page by page over a core.PageStreamer: it must stream its walks")
	}
	// Elsewhere the world's own faults may end a stream before a page
	// whose fault was chosen, as they end a pull.
	if s := inj.Stats(); s.Total() < 4 && w.mode == modeClean {
		t.Errorf("the stream faults of replica c did not all fire: %s", s)
	}
	w.converged(t, a, b, c)
	w.checkAppliedOnce(t)
}

func streamPage(k int) func(faults.Call) bool {
	return func(c faults.Call) bool { return c.StreamPage == k }
}

// syncUntilConverged syncs each replica until it holds the authority's
// rows: a walk a fault ended early (a short last page) resumes from the
// cursor at the next sync.
func (w *world) syncUntilConverged(t *testing.T, rs ...*replica) {
	t.Helper()
	want := listStore(t, w.store, NoteKind)
	for _, r := range rs {
		for try := 0; ; try++ {
			w.sync(t, r)
			got, err := r.eng.List(t.Context(), NoteKind, core.ListOptions{IncludeDeleted: true})
			if err != nil {
				t.Fatal(err)
			}
			d := sameRecords(got, want)
			if d == "" {
				break
			}
			if try == 10 {
				t.Fatalf("replica %s after %d syncs still differs from the authority (replica vs authority): %s", r.name, try+1, d)
			}
		}
	}
}

// inProcessStreamer is InProcess over an authority that streams its walks.
type inProcessStreamer struct{ inProcess }

var _ core.PageStreamer = inProcessStreamer{}

func (c inProcessStreamer) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	ctx, err := c.auth(ctx)
	if err != nil {
		return err
	}
	return c.inner.(core.PageStreamer).PullPages(ctx, req, yield)
}
