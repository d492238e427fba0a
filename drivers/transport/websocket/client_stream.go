package websocket

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/offsync/offsync/core"
)

// clientWindow is the window the client asks for (at most the server's
// maxWindow): the pages the server may read and send ahead of the engine.
// The engine holds two more (one applied, one waiting), so a few pages
// keep the server busy while the replica applies.
const clientWindow = 4

// pullFrame is the pull or pullPages frame of req.
func (c *Client) pullFrame(t string, req core.PullRequest) clientFrame {
	limit := req.Limit
	if limit <= 0 {
		limit = c.page
	}
	f := clientFrame{T: t, Kind: req.Kind, Limit: &limit, PageToken: req.PageToken}
	if req.PageToken == "" && !req.After.IsZero() {
		f.After = &wireCursor{UpdatedAt: core.FormatTime(req.After.UpdatedAt), ID: req.After.ID}
	}
	return f
}

// pageStream is a pullPages as the socket's reader sees it: the reader
// puts each of its frames in frames and never waits. The server sends at
// most window pages beyond the credits granted, and one frame (an error,
// or the ok of a cancel) after them; a server that sends more is out of
// the protocol (over).
type pageStream struct {
	frames chan *inFrame
	over   atomic.Bool
}

func newPageStream(window int) *pageStream {
	return &pageStream{frames: make(chan *inFrame, window+1)}
}

// deliver hands f to the stream without blocking the reader.
func (st *pageStream) deliver(f *inFrame) {
	select {
	case st.frames <- f:
	default:
		st.over.Store(true)
	}
}

// PullPages implements core.PageStreamer with a pullPages frame: the server
// walks the kind page after page, sending each page as soon as a credit
// allows; the client grants one page per page yield has taken, so that at
// most the window of pages waits on the client. Against a server whose
// hello has no maxWindow (it does not stream), it pulls page by page. Its
// errors are classified as Pull's; a socket lost mid-walk is an error
// wrapping core.ErrUnavailable, returned after the pages received before it
// have been yielded.
func (c *Client) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	if req.Kind == "" {
		return fmt.Errorf("websocket: pull: %w: empty kind", core.ErrInvalid)
	}
	what := "pull " + req.Kind
	for attempt := 0; ; attempt++ {
		s, err := c.session(ctx)
		if err != nil {
			if errors.Is(err, core.ErrUnauthorized) && attempt == 0 && c.token != nil {
				continue
			}
			return err
		}
		if s.hello.MaxWindow <= 0 {
			return core.PullEach(ctx, c, req, yield)
		}
		yielded, err := c.stream(ctx, s, req, yield)
		if errors.Is(err, errRefused) {
			if attempt == 0 && !yielded && c.token != nil {
				continue // once, with a refreshed token, as call does
			}
			return fmt.Errorf("websocket: %s: %w (close 4001)", what, core.ErrUnauthorized)
		}
		return err
	}
}

// stream runs one pullPages on s; yielded reports whether a page was
// yielded (a 4001 before that may be retried).
func (c *Client) stream(ctx context.Context, s *session, req core.PullRequest, yield func(core.Page) error) (yielded bool, err error) {
	what := "pull " + req.Kind
	window := min(int(s.hello.MaxWindow), clientWindow)
	f := c.pullFrame(tPages, req)
	f.Window = &window
	st := newPageStream(window)
	id, err := c.send(ctx, s, f, func(id int64) {
		s.mu.Lock()
		s.streams[id] = st
		s.mu.Unlock()
	})
	defer func() {
		s.mu.Lock()
		delete(s.streams, id)
		s.mu.Unlock()
	}()
	if err != nil {
		return false, err
	}
	ended := false // the server's last frame of the stream was read
	defer func() {
		if !ended {
			c.cancelStream(s, id)
		}
	}()
	// Without a deadline of the caller's, each page is awaited at most the
	// timeout (a server that stopped sending while its socket lives).
	var timer *time.Timer
	var timeout <-chan time.Time
	if _, ok := ctx.Deadline(); !ok {
		timer = time.NewTimer(c.timeout)
		defer timer.Stop()
		timeout = timer.C
	}
	received, granted := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return yielded, netErr(ctx, what, err)
		}
		var a *inFrame
		select {
		case a = <-st.frames:
		default:
			if timer != nil {
				timer.Reset(c.timeout)
			}
			select {
			case a = <-st.frames:
			case <-s.done:
				// The frames read before the socket ended come first.
				select {
				case a = <-st.frames:
				default:
					return yielded, c.lost(ctx, s, what)
				}
			case <-ctx.Done():
				return yielded, netErr(ctx, what, ctx.Err())
			case <-timeout:
				return yielded, netErr(ctx, what, errors.New("no page within the timeout"))
			}
		}
		if st.over.Load() {
			return yielded, fmt.Errorf("websocket: %s: %w: the server sent more than the window of %d pages", what, core.ErrUnavailable, window)
		}
		switch a.T {
		case tPage:
		case tError:
			ended = true
			return yielded, answerErr(what, a)
		default:
			ended = a.T == tOK
			return yielded, unexpected(what, a)
		}
		if received++; received > window+granted {
			return yielded, fmt.Errorf("websocket: %s: %w: the server sent more than the window of %d pages", what, core.ErrUnavailable, window)
		}
		page, err := readPage(req.Kind, a, *f.Limit)
		if err != nil {
			return yielded, fmt.Errorf("websocket: %s: %w", what, err)
		}
		last := page.NextPageToken == "" || len(page.Records) == 0
		ended = last
		if err := yield(page); err != nil {
			return yielded, err
		}
		yielded = true
		if last {
			return true, nil
		}
		// The page is taken: the server may send one more. A failed write
		// means the socket is ending; the loop learns it from s.done.
		if c.write(s, creditFrame(id)) == nil {
			granted++
		}
	}
}

// creditFrame grants stream id one more page.
func creditFrame(id int64) []byte {
	b := append(make([]byte, 0, 48), `{"t":"credit","stream":`...)
	b = strconv.AppendInt(b, id, 10)
	return append(b, `,"n":1}`...)
}

// cancelStream tells the server to stop stream id, in the background (the
// caller returns at once; a socket that does not take the frame is being
// lost anyway).
func (c *Client) cancelStream(s *session, id int64) {
	if !s.alive() {
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.wg.Add(1) // under mu, before Close's Wait
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		b := append(make([]byte, 0, 40), `{"t":"cancel","stream":`...)
		b = strconv.AppendInt(b, id, 10)
		_ = c.write(s, append(b, '}'))
	}()
}
