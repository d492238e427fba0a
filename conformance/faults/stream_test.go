package faults_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
)

// streamPower streams the test authority's feed: page after page of its
// Pull, as server.Service.PullPages does, counting the streams opened and
// the pages served.
type streamPower struct {
	a      *authority
	opened *int
	served *int
}

func (p streamPower) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	*p.opened++
	return core.PullEach(ctx, p.a, req, func(page core.Page) error {
		*p.served++
		return yield(page)
	})
}

// streamer is the test authority with every power, streams included.
type streamer struct {
	*authority
	getPower
	subPower
	batchPower
	streamPower
	opened, served int
}

func newStreamer(records int) *streamer {
	s := &streamer{authority: newAuthority(records)}
	s.getPower, s.subPower, s.batchPower = getPower{s.authority}, subPower{s.authority}, batchPower{s.authority}
	s.streamPower = streamPower{s.authority, &s.opened, &s.served}
	return s
}

// collect runs a stream of the feed with pages of 5 and returns the pages
// yielded.
func collect(t *testing.T, tr core.Transport) ([]core.Page, error) {
	t.Helper()
	ps, ok := tr.(core.PageStreamer)
	if !ok {
		t.Fatalf("%T lost the PageStreamer power of the inner transport", tr)
	}
	var pages []core.Page
	err := ps.PullPages(t.Context(), core.PullRequest{Kind: "todo", Limit: 5}, func(p core.Page) error {
		pages = append(pages, p)
		return nil
	})
	return pages, err
}

func ids(pages []core.Page) [][]string {
	var out [][]string
	for _, p := range pages {
		var page []string
		for _, r := range p.Records {
			page = append(page, r.ID)
		}
		out = append(out, page)
	}
	return out
}

// The feed of 12 records in pages of 5.
var want12 = [][]string{{"t00", "t01", "t02", "t03", "t04"}, {"t05", "t06", "t07", "t08", "t09"}, {"t10", "t11"}}

func TestStreamFaults(t *testing.T) {
	// stream runs a stream of 12 records under rule through the wrapper.
	stream := func(t *testing.T, rule faults.Rule) ([]core.Page, error, *streamer, *faults.Injector) {
		s := newStreamer(12)
		inj := newInjector(t, faults.Options{Seed: 3, Rules: []faults.Rule{rule}})
		pages, err := collect(t, faults.Wrap(s, inj))
		return pages, err, s, inj
	}
	page := func(k int) func(faults.Call) bool {
		return func(c faults.Call) bool { return c.StreamPage == k }
	}
	equal := func(t *testing.T, got [][]string, want [][]string) {
		t.Helper()
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("pages %v, want %v", got, want)
		}
	}

	t.Run("none", func(t *testing.T) {
		s := newStreamer(12)
		inj := newInjector(t, faults.Options{})
		pages, err := collect(t, faults.Wrap(s, inj))
		if err != nil {
			t.Fatal(err)
		}
		equal(t, ids(pages), want12)
		if st := inj.Stats(); st.Calls[faults.Pull] != 3 || st.Total() != 0 || s.opened != 1 || s.served != 3 {
			t.Fatalf("stats %v, %d streams, %d pages served; want 3 pulls and one stream of 3 pages", st, s.opened, s.served)
		}
	})
	t.Run("drop the request of the first page", func(t *testing.T) {
		pages, err, s, inj := stream(t, faults.Rule{Fault: faults.DropRequest, Method: faults.Pull, Match: page(1)})
		if !errors.Is(err, core.ErrUnavailable) || len(pages) != 0 {
			t.Fatalf("got %d pages and %v, want none and ErrUnavailable", len(pages), err)
		}
		if s.opened != 0 || inj.Stats().Injected[faults.DropRequest] != 1 {
			t.Fatalf("%d streams opened (want none), stats %v", s.opened, inj.Stats())
		}
	})
	// Failing after k pages, as a transport that lost its connection: each
	// fault that ends a stream.
	for _, f := range []faults.Fault{faults.DropRequest, faults.DropAnswer, faults.CutPage} {
		t.Run("fail after 2 pages with "+f.String(), func(t *testing.T) {
			pages, err, s, inj := stream(t, faults.Rule{Fault: f, Method: faults.Pull, Match: page(3)})
			if !errors.Is(err, core.ErrUnavailable) {
				t.Fatalf("got %v, want ErrUnavailable", err)
			}
			equal(t, ids(pages), want12[:2])
			served := 3 // the authority served the third page, then it was lost
			if f == faults.DropRequest {
				served = 2 // the stream ended before the authority served it
			}
			if s.served != served || inj.Stats().Injected[f] != 1 {
				t.Fatalf("the authority served %d pages, want %d; stats %v", s.served, served, inj.Stats())
			}
		})
	}
	t.Run("truncate the second page", func(t *testing.T) {
		pages, err, _, inj := stream(t, faults.Rule{Fault: faults.TruncatePage, Method: faults.Pull, Match: page(2), Keep: 2})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, ids(pages), [][]string{want12[0], {"t05", "t06"}, want12[2]})
		if pages[1].NextPageToken == "" || inj.Stats().Injected[faults.TruncatePage] != 1 {
			t.Fatalf("the truncated page lost its token (%q), or stats %v", pages[1].NextPageToken, inj.Stats())
		}
	})
	t.Run("short second page", func(t *testing.T) {
		pages, err, s, inj := stream(t, faults.Rule{Fault: faults.ShortPage, Method: faults.Pull, Match: page(2), Keep: 1})
		if err != nil {
			t.Fatalf("a stream that ended at a short last page: %v, want nil", err)
		}
		equal(t, ids(pages), [][]string{want12[0], {"t05"}})
		if p := pages[1]; p.NextPageToken != "" || p.Remaining != -1 {
			t.Fatalf("the short page has token %q, remaining %d; want a last page", p.NextPageToken, p.Remaining)
		}
		if s.served != 2 || inj.Stats().Injected[faults.ShortPage] != 1 {
			t.Fatalf("the authority served %d pages (want 2: the stream ends there), stats %v", s.served, inj.Stats())
		}
	})
	t.Run("duplicate the opening", func(t *testing.T) {
		pages, err, s, inj := stream(t, faults.Rule{Fault: faults.Duplicate, Method: faults.Pull})
		if err != nil {
			t.Fatal(err)
		}
		equal(t, ids(pages), want12)
		// The first delivery served one page; a later page's Duplicate
		// has no request to repeat and is not counted.
		if s.opened != 2 || s.served != 4 || inj.Stats().Injected[faults.Duplicate] != 1 {
			t.Fatalf("%d streams, %d pages served, stats %v; want 2 streams, 4 pages, one duplicate", s.opened, s.served, inj.Stats())
		}
	})
	t.Run("yield's error", func(t *testing.T) {
		s := newStreamer(12)
		inj := newInjector(t, faults.Options{})
		mine := errors.New("the caller's")
		calls := 0
		err := faults.Wrap(s, inj).(core.PageStreamer).PullPages(t.Context(), core.PullRequest{Kind: "todo", Limit: 5}, func(core.Page) error {
			calls++
			if calls == 2 {
				return mine
			}
			return nil
		})
		if err != mine || calls != 2 || s.served != 2 {
			t.Fatalf("got %v after %d yields and %d pages served; want the caller's error as is, after 2 of each", err, calls, s.served)
		}
	})
	t.Run("calls", func(t *testing.T) {
		s := newStreamer(12)
		var calls []faults.Call
		inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.Delay, Delay: 1,
			Match: func(c faults.Call) bool { calls = append(calls, c); return false }}}})
		if _, err := collect(t, faults.Wrap(s, inj)); err != nil {
			t.Fatal(err)
		}
		// Each page is the Pull a walk page by page would make.
		var want []core.PullRequest
		req := core.PullRequest{Kind: "todo", Limit: 5}
		for {
			want = append(want, req)
			p, err := s.Pull(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			if p.NextPageToken == "" {
				break
			}
			last := p.Records[len(p.Records)-1]
			req.After, req.PageToken = core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}, p.NextPageToken
		}
		if len(calls) != len(want) {
			t.Fatalf("%d calls, want %d", len(calls), len(want))
		}
		for i, c := range calls {
			if c.Method != faults.Pull || c.StreamPage != i+1 || c.N != int64(i+1) || c.Kind != "todo" || c.Pull != want[i] {
				t.Errorf("call %d: %+v, want Pull %d of the stream with %+v", i, c, i+1, want[i])
			}
		}
	})
}

func TestStreamDelayHoldsTheStream(t *testing.T) {
	s := newStreamer(12)
	release := make(chan struct{})
	held := make(chan struct{})
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{
		Fault: faults.Delay, Method: faults.Pull, Release: release,
		Match: func(c faults.Call) bool {
			if c.StreamPage == 2 {
				close(held)
				return true
			}
			return false
		},
	}}})
	tr := faults.Wrap(s, inj)
	yielded := make(chan int, 3)
	done := make(chan error, 1)
	go func() {
		done <- tr.(core.PageStreamer).PullPages(t.Context(), core.PullRequest{Kind: "todo", Limit: 5}, func(p core.Page) error {
			yielded <- len(p.Records)
			return nil
		})
	}()
	<-held
	// Held before the second page: the authority served one page, and
	// another call goes through meanwhile.
	if _, err := tr.Pull(t.Context(), core.PullRequest{Kind: "todo", Limit: 1}); err != nil {
		t.Fatal(err)
	}
	if s.served != 1 || len(yielded) != 1 {
		t.Fatalf("while held: %d pages served, %d yielded; want 1 each", s.served, len(yielded))
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if s.served != 3 || len(yielded) != 3 {
		t.Fatalf("after the release: %d pages served, %d yielded; want 3 each", s.served, len(yielded))
	}

	// The caller's ctx ends the hold early.
	s2 := newStreamer(12)
	inj2 := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.Delay, Method: faults.Pull,
		Release: make(chan struct{}), Match: func(c faults.Call) bool { return c.StreamPage == 2 }}}})
	ctx, cancel := context.WithCancel(t.Context())
	err := faults.Wrap(s2, inj2).(core.PageStreamer).PullPages(ctx, core.PullRequest{Kind: "todo", Limit: 5}, func(core.Page) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, core.ErrUnavailable) || s2.served != 1 {
		t.Fatalf("got %v after %d pages served; want ErrUnavailable and context.Canceled after 1", err, s2.served)
	}
}

// Streams and Pulls share the rules of Method Pull, and the Nth of them.
func ExampleWrap_stream() {
	inj, err := faults.New(faults.Options{Rules: []faults.Rule{
		// The connection is lost before the third page of any stream.
		{Fault: faults.DropRequest, Method: faults.Pull, Match: func(c faults.Call) bool { return c.StreamPage == 3 }},
	}})
	if err != nil {
		panic(err)
	}
	authority := newStreamer(12) // a core.PageStreamer: a server.Service, a gRPC client...
	tr := faults.Wrap(authority, inj).(core.PageStreamer)
	err = tr.PullPages(context.Background(), core.PullRequest{Kind: "todo", Limit: 5}, func(p core.Page) error {
		fmt.Println("page of", len(p.Records))
		return nil
	})
	fmt.Println("retry later:", errors.Is(err, core.ErrUnavailable))
	fmt.Println(inj.Stats())
	// Output:
	// page of 5
	// page of 5
	// retry later: true
	// calls: Pull=3 injected: drop_request=1
}
