package websocket

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
)

// maxWindow is the largest window a pullPages may ask for (the hello's
// maxWindow): how many pages the server may send ahead of the client's
// credits.
const maxWindow = 16

// streamSlots is how many pages of streams a socket's send queue holds at
// once: half of it, so that the other half stays for answers and notices.
func streamSlots(sendQueue int) int { return max(1, sendQueue/2) }

// errStreamEnded is how a stream's yield learns that the stream was ended
// from outside (a cancel, a bad credit, a repeated id).
var errStreamEnded = errors.New("websocket: the stream ended")

// stream is one pullPages being served: the walk runs in its request's
// goroutine (server.Service.PullPages), and each page waits for a credit.
// credit and ended are guarded by the socket's mu.
type stream struct {
	id     int64
	window int64
	credit int64 // pages the server may still send
	ended  bool  // its last frame is queued, or the socket is gone
	wake   chan struct{}
	ctx    context.Context // the walk's: ends with the socket or the stream
	cancel context.CancelFunc
}

// notStreaming answers a pullPages on a server whose authority does not
// stream walks (its hello has no maxWindow).
func notStreaming(id int64) serverFrame {
	return serverFrame{T: tError, ID: id, Status: http.StatusNotImplemented, Error: wire.CodeNotImplemented,
		Message: "this authority does not stream walks: pull page by page"}
}

// newStream checks a pullPages' window and registers its stream, with
// so.mu held: a credit or cancel read right after the request finds it.
func (so *socket) newStream(id int64, f *clientFrame) (*stream, error) {
	window, err := streamWindow(f)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(so.ctx)
	st := &stream{id: id, window: window, credit: window, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel}
	so.streams[id] = st
	return st, nil
}

// streamWindow reads a pullPages' window: 1 to maxWindow.
func streamWindow(f *clientFrame) (int64, error) {
	if f.Window == nil || *f.Window < 1 || *f.Window > maxWindow {
		return 0, fmt.Errorf("%w: pullPages needs a window from 1 to %d (maxWindow)", core.ErrInvalid, maxWindow)
	}
	return int64(*f.Window), nil
}

// control serves a credit or cancel frame. One naming a stream the socket
// started but that has ended is ignored: it crossed the stream's last
// frame on the wire.
func (so *socket) control(f *clientFrame) {
	sid := *f.Stream
	so.mu.Lock()
	st := so.streams[sid]
	last := so.lastID
	if st == nil {
		so.mu.Unlock()
		if sid > last {
			so.enqueue(errorFrame(0, fmt.Errorf("%w: %s of stream %d, which this socket has not started", core.ErrInvalid, f.T, sid)))
		}
		return
	}
	if f.T == tCancel {
		so.mu.Unlock()
		so.endStream(st, serverFrame{T: tOK, ID: sid})
		return
	}
	if n := *f.N; n > st.window-st.credit {
		granted := st.credit
		so.mu.Unlock()
		so.endStream(st, errorFrame(sid, fmt.Errorf("%w: a credit of %d on top of %d pages granted is over stream %d's window of %d",
			core.ErrInvalid, n, granted, sid, st.window)))
		return
	}
	st.credit += *f.N
	so.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// endLocked marks st ended, with so.mu held: it is forgotten and no longer
// counts against maxInFlight, from the moment its last frame is queued (a
// client that read that frame may send a new request at once).
func (so *socket) endLocked(st *stream) {
	st.ended = true
	delete(so.streams, st.id)
	so.inflight--
}

// endStream queues v (an ok, or an error with the stream's id) as the last
// frame of st, unless st has ended already, and stops its walk.
func (so *socket) endStream(st *stream, v any) {
	so.mu.Lock()
	if st.ended {
		so.mu.Unlock()
		return
	}
	so.endLocked(st)
	so.mu.Unlock()
	st.cancel()
	so.enqueue(v)
}

// dropStream ends st, if nothing did, once its request is over (the socket
// is gone).
func (so *socket) dropStream(st *stream) {
	so.mu.Lock()
	if !st.ended {
		so.endLocked(st)
	}
	so.mu.Unlock()
	st.cancel()
}

// pullPages serves a stream: the authority's one walk loop
// (core.PageStreamer, i.e. server.Service.PullPages: scope, limits and
// tokens page by page) under server.StreamContext, each page framed as a
// pull's answer and sent once a credit allows it. tok is the token the
// stream started with.
func (so *socket) pullPages(ctx context.Context, id int64, f *clientFrame, st *stream, tok string) {
	req, err := pullRequest(f)
	if err != nil {
		so.endStream(st, errorFrame(id, err))
		return
	}
	sctx, cancel := server.StreamContext(ctx)
	defer cancel()
	err = so.srv.streamer.PullPages(sctx, req, func(page core.Page) error {
		last := page.NextPageToken == "" || len(page.Records) == 0
		if last {
			page.NextPageToken = "" // the frame that ends the stream says so
		}
		out, err := encodePage(id, &page)
		if err != nil {
			return err
		}
		out.slot = true
		return so.sendPage(sctx, st, out, last)
	})
	switch {
	case err == nil:
		// The last page ended the stream; an authority that stopped before
		// it gets the stream ended all the same, retryably (a no-op when
		// the last page was sent).
		so.endStream(st, errorFrame(id, fmt.Errorf("%w: the walk ended before its last page", core.ErrUnavailable)))
	case errors.Is(err, errStreamEnded):
	case server.Expired(sctx):
		so.mu.Lock()
		same := so.token == tok
		so.mu.Unlock()
		if same {
			so.closeWith(CloseUnauthorized, "the token expired")
			return
		}
		// An auth frame replaced the token: only this stream's ends.
		so.endStream(st, errorFrame(id, server.ErrTokenExpired))
	case so.ctx.Err() != nil:
		// The socket is gone.
	default:
		so.endStream(st, errorFrame(id, err))
	}
}

// sendPage waits for a credit of st and a stream slot, then queues the
// page frame out; last ends the stream.
func (so *socket) sendPage(ctx context.Context, st *stream, out outFrame, last bool) error {
	for {
		so.mu.Lock()
		if st.ended {
			so.mu.Unlock()
			return errStreamEnded
		}
		if st.credit > 0 {
			st.credit--
			so.mu.Unlock()
			break
		}
		so.mu.Unlock()
		select {
		case <-st.wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case so.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	so.mu.Lock()
	if st.ended {
		so.mu.Unlock()
		<-so.slots
		return errStreamEnded
	}
	if last {
		so.endLocked(st)
	}
	ok := so.queueLocked(out)
	so.mu.Unlock()
	if !ok {
		<-so.slots
		so.overflow()
		return errStreamEnded
	}
	return nil
}
