package transporttest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/offsync/offsync/conformance/transporttest"
	"github.com/offsync/offsync/core"
)

// brokenCase is an entry of broken (broken_test.go).
type brokenCase = struct {
	wrap  func(core.Transport) core.Transport
	tests string
	want  []string
}

// Broken page streams: StreamedPages must fail against each of them (the
// parent is TestSuiteFailsOnBrokenTransports, broken_test.go).
func init() {
	broken["bufferingStream"] = brokenCase{
		wrap:  func(c core.Transport) core.Transport { return bufferingStream{c} },
		tests: "StreamedPages",
		want:  []string{"a stream must hold back the authority (flow control)"},
	}
	broken["deafStream"] = brokenCase{
		wrap:  func(c core.Transport) core.Transport { return deafStream{c} },
		tests: "StreamedPages",
		want: []string{"a yield that failed at the second page: PullPages returned <nil>",
			"a stream whose ctx was cancelled at its second page: <nil>"},
	}
	broken["shortStream"] = brokenCase{
		wrap:  func(c core.Transport) core.Transport { return shortStream{c} },
		tests: "StreamedPages",
		want:  []string{"from the start: the stream yielded 2 pages, Pull's walk has"},
	}
	broken["tombstonelessStream"] = brokenCase{
		wrap:  func(c core.Transport) core.Transport { return tombstonelessStream{c} },
		tests: "StreamedPages",
		want:  []string{"records vs", "the stream brought 0 tombstones, want 4"},
	}
}

// walkPages calls each for the pages of Pull's walk, until each fails or
// the last page.
func walkPages(ctx context.Context, c core.Transport, req core.PullRequest, each func(core.Page) error) error {
	for {
		p, err := c.Pull(ctx, req)
		if err != nil {
			return err
		}
		if err := each(p); err != nil {
			return err
		}
		if p.NextPageToken == "" || len(p.Records) == 0 {
			return nil
		}
		last := p.Records[len(p.Records)-1]
		req.After, req.PageToken = core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}, p.NextPageToken
	}
}

// bufferingStream reads the whole walk before it yields the first page: no
// flow control.
type bufferingStream struct{ core.Transport }

func (b bufferingStream) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	var pages []core.Page
	if err := walkPages(ctx, b.Transport, req, func(p core.Page) error { pages = append(pages, p); return nil }); err != nil {
		return err
	}
	for _, p := range pages {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := yield(p); err != nil {
			return err
		}
	}
	return nil
}

// deafStream goes on after yield failed and after ctx ended.
type deafStream struct{ core.Transport }

func (d deafStream) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	return walkPages(context.WithoutCancel(ctx), d.Transport, req, func(p core.Page) error {
		_ = yield(p)
		return nil
	})
}

// shortStream ends after two pages without an error, the walk unfinished.
type shortStream struct{ core.Transport }

func (s shortStream) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	n := 0
	err := walkPages(ctx, s.Transport, req, func(p core.Page) error {
		if n++; n > 2 {
			return errDone
		}
		return yield(p)
	})
	if errors.Is(err, errDone) {
		return nil
	}
	return err
}

var errDone = errors.New("transporttest: two pages are enough")

// tombstonelessStream leaves the tombstones out of its pages.
type tombstonelessStream struct{ core.Transport }

func (s tombstonelessStream) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	return walkPages(ctx, s.Transport, req, func(p core.Page) error {
		live := p.Records[:0:0]
		for _, r := range p.Records {
			if !r.Deleted() {
				live = append(live, r)
			}
		}
		p.Records = live
		return yield(p)
	})
}

// TestStreamedPagesPassesInProcess is the control of the broken streams:
// the in-process client over a server.Service (a core.PageStreamer)
// passes.
func TestStreamedPagesPassesInProcess(t *testing.T) {
	transporttest.TestStreamedPages(t, harness{})
}
