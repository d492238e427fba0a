package faults

import (
	"context"
	"errors"

	"github.com/offsync/offsync/core"
)

// errStop ends an inner stream from the wrapper's yield, when a fault ends
// the stream the caller sees.
var errStop = errors.New("faults: stream stopped by an injected fault")

type streamMethod struct {
	t     *transport
	inner core.PageStreamer
}

// PullPages implements core.PageStreamer. Each page of the stream is a Pull
// call for the injector (Call.StreamPage is its position), so that the
// rules of Method Pull reach streamed walks as they reach walks made of
// pulls. The first page's faults are chosen before the stream opens, each
// next one's once the page before it was yielded (when that page has a
// token), and they act as on a Pull:
//
//   - Delay holds the stream before the page (the caller's ctx ends the wait
//     early);
//   - DropRequest: the first page's opens no stream, a later page's ends the
//     stream before it (the connection was lost): an error wrapping
//     core.ErrUnavailable after the pages already yielded;
//   - DropAnswer, CutPage: the authority served the page, then the stream
//     failed: the page is not yielded, the error wraps core.ErrUnavailable
//     (DropAnswer also replaces an error of the inner stream);
//   - TruncatePage keeps the page's first Keep records and its token: the
//     stream goes on after the full page;
//   - ShortPage yields the page's first Keep records as a last page and
//     ends the stream there without an error, as an authority that ends a
//     walk early would;
//   - Duplicate applies to the first page only: the request reaches the
//     authority twice, the first stream's first page is served and lost,
//     and the caller gets the second stream.
func (s streamMethod) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	inj := s.t.inj
	n := 1
	d := inj.decide(&Call{Method: Pull, Kind: req.Kind, Pull: req, StreamPage: n})
	if err := inj.hold(ctx, d); err != nil {
		return err
	}
	if d.has(DropRequest) {
		inj.count(DropRequest)
		return dropped(DropRequest, Pull)
	}
	if d.has(Duplicate) {
		inj.count(Duplicate)
		_ = s.inner.PullPages(ctx, req, func(core.Page) error { return errStop })
	}
	var stopped error // how the stream ends when the wrapper stopped it
	next := req
	err := s.inner.PullPages(ctx, req, func(page core.Page) error {
		switch {
		case d.has(DropAnswer):
			inj.count(DropAnswer)
			stopped = dropped(DropAnswer, Pull)
			return errStop
		case d.has(CutPage):
			inj.count(CutPage)
			stopped = dropped(CutPage, Pull)
			return errStop
		case d.has(TruncatePage):
			if k := d.keep(TruncatePage, len(page.Records)); k < len(page.Records) {
				inj.count(TruncatePage)
				page.Records = page.Records[:k:k]
			}
		case d.has(ShortPage):
			if k := d.keep(ShortPage, len(page.Records)); k < len(page.Records) {
				inj.count(ShortPage)
				page.Records = page.Records[:k:k]
				page.NextPageToken = ""
				page.Remaining = -1
				if err := yield(page); err != nil {
					return err
				}
				return errStop // stopped stays nil: the walk ended at a last page
			}
		}
		if err := yield(page); err != nil {
			return err
		}
		if page.NextPageToken == "" || len(page.Records) == 0 {
			return nil // the last page: the inner stream ends
		}
		last := page.Records[len(page.Records)-1]
		next.After = core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
		next.PageToken = page.NextPageToken
		n++
		d = inj.decide(&Call{Method: Pull, Kind: req.Kind, Pull: next, StreamPage: n})
		if err := inj.hold(ctx, d); err != nil {
			stopped = err
			return errStop
		}
		if d.has(DropRequest) {
			inj.count(DropRequest)
			stopped = dropped(DropRequest, Pull)
			return errStop
		}
		return nil
	})
	switch {
	case errors.Is(err, errStop):
		return stopped
	case err != nil && d.has(DropAnswer):
		inj.count(DropAnswer)
		return dropped(DropAnswer, Pull)
	}
	return err
}
