package websocket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	ws "github.com/coder/websocket"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
	"github.com/offsync/offsync/tracing"
)

// Server is the server half: an http.Handler that upgrades GET requests to
// sockets speaking offsync.v1 and serves every call of one authority on
// them. It implements server.HTTPTransport.
type Server struct {
	t        core.Transport
	auth     bool // t authenticates tokens
	sub      core.Subscriber
	getter   core.Getter
	streamer core.PageStreamer // nil: pullPages is not served
	lim      server.Limits
	log      *slog.Logger

	mu      sync.Mutex
	sockets map[*socket]struct{}
	closing bool
	wg      sync.WaitGroup
}

var _ server.HTTPTransport = (*Server)(nil)

// NewServer returns the server half over t with the given edge limits (zero
// fields take server's defaults). A nil logger discards.
func NewServer(t core.Transport, lim server.Limits, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{t: t, lim: lim.WithDefaults(), log: log, sockets: map[*socket]struct{}{}}
	_, s.auth = t.(core.Authenticator)
	s.sub, _ = t.(core.Subscriber)
	s.getter, _ = t.(core.Getter)
	s.streamer, _ = t.(core.PageStreamer)
	return s
}

// openServer is the registered opener of the "websocket" half. It has no
// options of its own.
func openServer(_ context.Context, t core.Transport, cfg server.TransportConfig) (server.TransportServer, error) {
	if len(cfg.Options) > 0 {
		keys := make([]string, 0, len(cfg.Options))
		for k := range cfg.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("websocket: %w: unknown option(s) %s (the websocket half has none; its limits are the shared limits)",
			core.ErrInvalid, strings.Join(keys, ", "))
	}
	return NewServer(t, cfg.Limits, cfg.Logger), nil
}

// Shutdown closes every socket with 1001 (going away) and waits for their
// handlers until ctx is done. New sockets are refused from then on.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	socks := make([]*socket, 0, len(s.sockets))
	for so := range s.sockets {
		socks = append(socks, so)
	}
	s.mu.Unlock()
	for _, so := range socks {
		so.closeWith(ws.StatusGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, so := range socks {
			so.c.CloseNow()
		}
		return ctx.Err()
	}
}

// ServeHTTP upgrades the request and serves the socket until it closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" && r.URL.Path != "" {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	authz := r.Header.Values("Authorization")
	c, err := ws.Accept(w, r, &ws.AcceptOptions{Subprotocols: []string{Subprotocol}, InsecureSkipVerify: true})
	if err != nil {
		s.log.DebugContext(r.Context(), "websocket: handshake refused", "err", err)
		return
	}
	if c.Subprotocol() != Subprotocol {
		c.Close(ws.StatusPolicyViolation, "the subprotocol must be "+Subprotocol)
		return
	}
	c.SetReadLimit(s.lim.MaxMessage)
	ctx, cancel := context.WithCancel(server.WithTransport(context.WithoutCancel(r.Context()), "websocket"))
	so := &socket{srv: s, c: c, ctx: ctx, cancel: cancel,
		send: make(chan outFrame, s.lim.SendQueue), done: make(chan struct{}),
		slots: make(chan struct{}, streamSlots(s.lim.SendQueue)),
		subs:  map[int64]context.CancelFunc{}, streams: map[int64]*stream{}, authCtx: ctx}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close(ws.StatusGoingAway, "server shutting down")
		cancel()
		return
	}
	s.sockets[so] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sockets, so)
		s.mu.Unlock()
	}()
	so.serve(authz)
}

// socket is one client connection.
type socket struct {
	srv    *Server
	c      *ws.Conn
	ctx    context.Context // ends when the socket closes
	cancel context.CancelFunc
	send   chan outFrame // the bounded send queue
	done   chan struct{}
	// slots bounds the pages of streams in the send queue (one slot per
	// page, from queued to written) to half the queue: streams alone never
	// fill it, so they never get their socket closed with 1008.
	slots chan struct{}

	bg sync.WaitGroup // writer, heartbeat, closer, requests, forwarders

	mu       sync.Mutex
	closed   bool
	authed   bool
	token    string
	authCtx  context.Context    // ctx with the principal of token
	expiry   context.CancelFunc // disarms the close at the token's expiry
	lastID   int64
	inflight int
	subs     map[int64]context.CancelFunc
	streams  map[int64]*stream // the running pullPages, by id
}

// outFrame is an encoded frame on the send queue; slot marks a stream's
// page, which holds one of the socket's slots until it is written; buf,
// when set, is the pageBufs buffer b was written in, given back once b is
// written.
type outFrame struct {
	b    []byte
	slot bool
	buf  *[]byte
}

// pageBufs recycles the buffers page frames are encoded in: the next page
// is written in a buffer that already has a page's size.
var pageBufs = sync.Pool{New: func() any { return new([]byte) }}

// encodePage encodes the page frame answering request id in a buffer of
// pageBufs.
func encodePage(id int64, page *core.Page) (outFrame, error) {
	buf := pageBufs.Get().(*[]byte)
	b, err := appendPage((*buf)[:0], id, page)
	if err != nil {
		pageBufs.Put(buf)
		return outFrame{}, err
	}
	return outFrame{b: b, buf: buf}, nil
}

// recycle gives f's buffer back to pageBufs, b written.
func (f *outFrame) recycle() {
	if f.buf != nil && cap(f.b) <= maxPooledFrame {
		*f.buf = f.b[:0]
		pageBufs.Put(f.buf)
	}
}

// closeWith ends the socket with code: queued frames are dropped, the
// close frame goes after the frame being written, and the connection is cut
// if the close handshake has not ended within a heartbeat (a peer that does
// not read).
func (so *socket) closeWith(code ws.StatusCode, reason string) {
	so.mu.Lock()
	if so.closed {
		so.mu.Unlock()
		return
	}
	so.closed = true
	so.bg.Add(1) // under mu: before serve's final Wait
	so.mu.Unlock()
	so.srv.log.Debug("websocket: closing a socket", "code", int(code), "reason", reason)
	go func() {
		defer so.bg.Done()
		t := time.AfterFunc(so.srv.lim.Heartbeat, func() { so.c.CloseNow() })
		defer t.Stop()
		so.c.Close(code, reason)
	}()
	so.cancel()
}

// isClosed reports whether a close was decided.
func (so *socket) isClosed() bool {
	so.mu.Lock()
	defer so.mu.Unlock()
	return so.closed
}

// enqueue puts a frame on the send queue; a full queue means the peer does
// not read fast enough: the socket is closed with 1008 rather than buffered
// for.
func (so *socket) enqueue(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		so.srv.log.Error("websocket: encoding a frame", "err", err)
		so.closeWith(ws.StatusInternalError, "encoding a frame failed")
		return
	}
	so.enqueueBytes(b)
}

// enqueueBytes is enqueue of an encoded frame.
func (so *socket) enqueueBytes(b []byte) { so.enqueueFrame(outFrame{b: b}) }

// enqueueFrame is enqueue of an encoded frame.
func (so *socket) enqueueFrame(f outFrame) {
	so.mu.Lock()
	ok := so.queueLocked(f)
	so.mu.Unlock()
	if !ok {
		so.overflow()
	}
}

// queueLocked puts f on the send queue, with so.mu held; false means the
// queue is full (call overflow, without so.mu). A closed socket takes and
// drops every frame.
func (so *socket) queueLocked(f outFrame) bool {
	if so.closed {
		return true
	}
	select {
	case so.send <- f:
		return true
	default:
		return false
	}
}

// overflow closes a socket whose send queue is full with 1008.
func (so *socket) overflow() {
	so.srv.log.Warn("websocket: the client does not read fast enough; closing with 1008", "queue", cap(so.send))
	so.closeWith(ws.StatusPolicyViolation, "send queue full: the client reads too slowly")
}

// writer sends queued frames until the socket ends. A write is not cut by
// the socket's end (that would lose the close frame behind it) but by its
// own deadline of two heartbeats.
func (so *socket) writer() {
	for {
		select {
		case <-so.ctx.Done():
			return
		case f := <-so.send:
			wctx, cancel := context.WithTimeout(context.Background(), 2*so.srv.lim.Heartbeat)
			err := so.c.Write(wctx, ws.MessageText, f.b)
			cancel()
			f.recycle()
			if f.slot {
				<-so.slots
			}
			if err != nil {
				so.closeWith(ws.StatusGoingAway, "write failed")
				return
			}
		}
	}
}

// heartbeat pings the peer every period; a peer that does not answer
// within a period is gone.
func (so *socket) heartbeat() {
	hb := time.NewTicker(so.srv.lim.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-so.ctx.Done():
			return
		case <-hb.C:
		}
		pctx, cancel := context.WithTimeout(context.Background(), so.srv.lim.Heartbeat)
		err := so.c.Ping(pctx)
		cancel()
		if err != nil {
			if so.ctx.Err() == nil {
				so.srv.log.Debug("websocket: heartbeat missed; closing", "err", err)
				so.closeWith(ws.StatusGoingAway, "heartbeat missed")
			}
			return
		}
	}
}

func (so *socket) serve(authz []string) {
	defer close(so.done)
	defer so.bg.Wait()
	defer so.cancel()

	lim := so.srv.lim
	hello := serverFrame{T: tHello, Protocol: protocolVersion, MaxMessage: lim.MaxMessage,
		MaxInFlight: lim.MaxInFlight, Heartbeat: lim.Heartbeat.Milliseconds()}
	if so.srv.streamer != nil {
		hello.MaxWindow = maxWindow
	}
	if b, ok := so.srv.t.(core.Batcher); ok {
		if bl, err := b.BatchLimits(so.ctx); err == nil {
			hello.MaxBatch, hello.MaxLimit = bl.MaxOps, bl.MaxLimit
		}
	}
	// Authentication: the handshake's header, else (when the authority
	// authenticates and refuses an anonymous caller) an auth frame within
	// AuthTimeout.
	var authErr error
	switch {
	case !so.srv.auth:
		so.authed = true
	case len(authz) > 0:
		tok, err := server.ParseBearer(authz)
		if err == nil {
			err = so.authenticate(tok)
		}
		authErr = err
	case so.authenticate("") == nil:
		// The authority welcomes anonymous callers: an auth frame may
		// still name someone later.
	default:
		hello.Auth = true
		t := time.AfterFunc(lim.AuthTimeout, func() {
			so.mu.Lock()
			authed := so.authed
			so.mu.Unlock()
			if !authed {
				so.closeWith(CloseUnauthorized, "no auth frame within the deadline")
			}
		})
		defer t.Stop()
	}
	// The hello goes first, before the writer starts.
	b, err := json.Marshal(hello)
	if err == nil {
		wctx, cancel := context.WithTimeout(context.Background(), 2*lim.Heartbeat)
		err = so.c.Write(wctx, ws.MessageText, b)
		cancel()
	}
	if err != nil {
		so.c.CloseNow()
		return
	}
	so.bg.Add(2)
	go func() { defer so.bg.Done(); so.writer() }()
	go func() { defer so.bg.Done(); so.heartbeat() }()
	if authErr != nil {
		so.refuse(authErr)
	}
	// The read loop runs until the connection ends; after a close was
	// decided it only drains, so that the close handshake completes. It
	// reads without a context: a cancelled read would cut the connection.
	// Each message is read into a buffer of frameBufs, given back once
	// handle has decoded it (what it keeps, it copies).
	for {
		typ, buf, err := so.readMessage()
		if err != nil {
			if errors.Is(err, ws.ErrMessageTooBig) {
				so.closeWith(ws.StatusMessageTooBig, "message over maxMessage")
			} else {
				so.closeWith(ws.StatusNormalClosure, "")
			}
			return
		}
		switch {
		case so.isClosed():
		case typ != ws.MessageText:
			so.closeWith(ws.StatusUnsupportedData, "frames are JSON text messages")
		default:
			so.handle(buf.Bytes())
		}
		putFrameBuf(buf)
	}
}

// readMessage reads the socket's next message into a buffer of frameBufs.
func (so *socket) readMessage() (ws.MessageType, *bytes.Buffer, error) {
	typ, r, err := so.c.Reader(context.Background())
	if err != nil {
		return typ, nil, err
	}
	buf := frameBufs.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		putFrameBuf(buf)
		return typ, nil, err
	}
	return typ, buf, nil
}

// authenticate checks tok with the authority and, when accepted, makes it
// the socket's token.
func (so *socket) authenticate(tok string) error {
	ctx, err := server.Authenticate(so.ctx, so.srv.t, tok)
	if err != nil {
		return err
	}
	// The socket closes with 4001 when this token expires, unless another
	// auth frame replaced it first (server.StreamContext).
	ectx, disarm := server.StreamContext(ctx)
	context.AfterFunc(ectx, func() {
		if server.Expired(ectx) {
			so.closeWith(CloseUnauthorized, "the token expired")
		}
	})
	so.mu.Lock()
	prev := so.expiry
	so.authed, so.token, so.authCtx, so.expiry = true, tok, ctx, disarm
	so.mu.Unlock()
	if prev != nil {
		prev()
	}
	return nil
}

// refuse closes the socket for an authentication failure: 4001 for a
// refused token; an authenticator that cannot answer now is 1013 (try
// again later).
func (so *socket) refuse(err error) {
	if errors.Is(err, core.ErrUnavailable) {
		so.closeWith(ws.StatusTryAgainLater, "the authenticator is unavailable")
		return
	}
	so.closeWith(CloseUnauthorized, "unauthorized")
}

// parseFrame decodes one text frame from a client. A frame that is not a
// JSON object is refused with close code 1007; one that is an object but
// not a request the protocol knows is an error wrapping core.ErrInvalid,
// answered for id (0 when the frame has none); otherwise f is the request
// and id its number.
func parseFrame(data []byte) (f clientFrame, id int64, closeCode ws.StatusCode, err error) {
	data = bytes.TrimSpace(data)
	// The hot frame is read without reflection, and checked as it is read:
	// a frame parsePushFrame takes is valid JSON.
	if pf, ok := parsePushFrame(data); ok && *pf.ID >= 1 {
		return pf, *pf.ID, 0, nil
	}
	if !json.Valid(data) {
		return f, 0, ws.StatusInvalidFramePayloadData, errors.New("malformed JSON")
	}
	if len(data) == 0 || data[0] != '{' {
		return f, 0, ws.StatusInvalidFramePayloadData, errors.New("a frame must be a JSON object")
	}
	if err := json.Unmarshal(data, &f); err != nil {
		var idOnly struct {
			ID int64 `json:"id"`
		}
		_ = json.Unmarshal(data, &idOnly)
		return f, max(idOnly.ID, 0), 0, fmt.Errorf("%w: %v", core.ErrInvalid, err)
	}
	if f.T == tCredit || f.T == tCancel {
		// Not requests: they name a stream and have no id of their own.
		if f.Stream == nil || *f.Stream < 1 {
			return f, 0, 0, fmt.Errorf("%w: a %s frame needs a stream, the id of a pullPages", core.ErrInvalid, f.T)
		}
		if f.T == tCredit && (f.N == nil || *f.N < 1) {
			return f, 0, 0, fmt.Errorf("%w: a credit frame needs n, a positive integer", core.ErrInvalid)
		}
		return f, 0, 0, nil
	}
	if f.ID == nil || *f.ID < 1 {
		return f, 0, 0, fmt.Errorf("%w: a frame needs an id, a positive integer", core.ErrInvalid)
	}
	id = *f.ID
	switch f.T {
	case tAuth, tPull, tPages, tPush, tGet, tSub, tUnsub, tPing:
	default:
		return f, id, 0, fmt.Errorf("%w: unknown frame type %q", core.ErrInvalid, f.T)
	}
	return f, id, 0, nil
}

// handle serves one frame.
func (so *socket) handle(data []byte) {
	f, id, closeCode, err := parseFrame(data)
	if closeCode != 0 {
		so.closeWith(closeCode, err.Error())
		return
	}
	if err != nil {
		so.enqueue(errorFrame(id, err))
		return
	}
	if f.T == tCredit || f.T == tCancel {
		so.control(&f)
		return
	}
	so.mu.Lock()
	if id <= so.lastID {
		last := so.lastID
		st := so.streams[id]
		so.mu.Unlock()
		err := fmt.Errorf("%w: id %d is not above the previous request's (%d): ids increase on a socket", core.ErrInvalid, id, last)
		if st != nil {
			// The answer names a running stream: it ends the stream, so
			// that no page follows an error with its id.
			so.endStream(st, errorFrame(id, err))
			return
		}
		so.enqueue(errorFrame(id, err))
		return
	}
	so.lastID = id
	authed := so.authed
	so.mu.Unlock()

	switch f.T {
	case tPing:
		so.enqueue(serverFrame{T: tPong, ID: id})
		return
	case tAuth:
		if err := so.authenticate(f.Token); err != nil {
			so.refuse(err)
			return
		}
		so.enqueue(serverFrame{T: tOK, ID: id})
		return
	}
	if !authed {
		so.enqueue(errorFrame(id, fmt.Errorf("%w: send an auth frame first", core.ErrUnauthorized)))
		return
	}
	if f.T == tUnsub {
		so.mu.Lock()
		cancel, ok := so.subs[f.Sub]
		delete(so.subs, f.Sub)
		so.mu.Unlock()
		if !ok {
			so.enqueue(errorFrame(id, fmt.Errorf("%w: no subscription %d", core.ErrNotFound, f.Sub)))
			return
		}
		cancel()
		so.enqueue(serverFrame{T: tOK, ID: id})
		return
	}
	so.mu.Lock()
	if so.inflight >= so.srv.lim.MaxInFlight {
		so.mu.Unlock()
		so.enqueue(serverFrame{T: tError, ID: id, Status: http.StatusTooManyRequests, Error: wire.CodeRateLimited,
			Message: fmt.Sprintf("more than %d requests in flight on this socket", so.srv.lim.MaxInFlight), RetryAfter: 1})
		return
	}
	var st *stream
	if f.T == tPages {
		if so.srv.streamer == nil {
			so.mu.Unlock()
			so.enqueue(notStreaming(id))
			return
		}
		if st, err = so.newStream(id, &f); err != nil {
			so.mu.Unlock()
			so.enqueue(errorFrame(id, err))
			return
		}
	}
	so.inflight++ // a stream counts until it ends
	so.bg.Add(1)
	so.mu.Unlock()
	go func() {
		defer so.bg.Done()
		if st != nil {
			defer so.dropStream(st) // it counts in flight until it ends
		} else {
			defer func() {
				so.mu.Lock()
				so.inflight--
				so.mu.Unlock()
			}()
		}
		so.request(id, &f, st)
	}()
}

// request serves one pull, pullPages (st), push, get or sub. The token is
// checked again first, so a token that expired mid-socket closes it with
// 4001.
func (so *socket) request(id int64, f *clientFrame, st *stream) {
	so.mu.Lock()
	tok := so.token
	so.mu.Unlock()
	base := so.ctx
	if st != nil {
		base = st.ctx
	}
	ctx, err := server.Authenticate(base, so.srv.t, tok)
	if err != nil {
		if errors.Is(err, core.ErrUnavailable) {
			if st != nil {
				so.endStream(st, errorFrame(id, err))
				return
			}
			so.enqueue(errorFrame(id, err))
			return
		}
		so.refuse(err)
		return
	}
	ctx = tracing.Extract(ctx, f.Traceparent)
	switch f.T {
	case tPull:
		so.pull(ctx, id, f)
	case tPages:
		so.pullPages(ctx, id, f, st, tok)
	case tPush:
		so.push(ctx, id, f)
	case tGet:
		so.get(ctx, id, f)
	case tSub:
		so.subscribe(ctx, id, f)
	}
}

// pullRequest reads the request of a pull or pullPages frame.
func pullRequest(f *clientFrame) (core.PullRequest, error) {
	req := core.PullRequest{Kind: f.Kind, PageToken: f.PageToken}
	if f.Kind == "" {
		return req, fmt.Errorf("%w: %s needs a kind", core.ErrInvalid, f.T)
	}
	if f.Limit != nil {
		if *f.Limit <= 0 {
			return req, fmt.Errorf("%w: limit must be positive", core.ErrInvalid)
		}
		req.Limit = *f.Limit
	}
	if f.After != nil && f.PageToken == "" {
		t, err := core.ParseTime(f.After.UpdatedAt)
		if err != nil {
			return req, fmt.Errorf("after.updated_at: %w", err)
		}
		req.After = core.Cursor{UpdatedAt: t, ID: f.After.ID}
	}
	return req, nil
}

func (so *socket) pull(ctx context.Context, id int64, f *clientFrame) {
	req, err := pullRequest(f)
	if err != nil {
		so.enqueue(errorFrame(id, err))
		return
	}
	page, err := so.srv.t.Pull(ctx, req)
	if err != nil {
		so.enqueue(errorFrame(id, err))
		return
	}
	out, err := encodePage(id, &page)
	if err != nil {
		so.enqueue(errorFrame(id, err))
		return
	}
	so.enqueueFrame(out)
}

// appendPage appends the page frame answering request id. The records are
// appended in their flat form one after the other; the members around
// them are encoding/json's.
func appendPage(b []byte, id int64, page *core.Page) ([]byte, error) {
	b = append(b, `{"t":"page","id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"items":[`...)
	var err error
	for i := range page.Records {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendRecord(b, &page.Records[i]); err != nil {
			return nil, err
		}
	}
	b = append(b, `],"nextPageToken":`...)
	if page.NextPageToken == "" {
		b = append(b, "null"...)
	} else {
		tok, _ := json.Marshal(page.NextPageToken)
		b = append(b, tok...)
	}
	if page.Remaining >= 0 {
		b = append(b, `,"remaining":`...)
		b = strconv.AppendInt(b, page.Remaining, 10)
	}
	return append(b, '}'), nil
}

func (so *socket) push(ctx context.Context, id int64, f *clientFrame) {
	maxOps := 0
	if b, ok := so.srv.t.(core.Batcher); ok {
		if bl, err := b.BatchLimits(ctx); err == nil {
			maxOps = bl.MaxOps
		}
	}
	ops, err := decodeOps(f.Ops, maxOps)
	if err != nil {
		so.enqueue(errorFrame(id, err))
		return
	}
	var res []core.PushResult
	if len(ops) > 0 {
		res, err = so.srv.t.Push(ctx, ops)
		if len(ops) == 1 && errors.Is(err, core.ErrUnknownKind) {
			// A lone op of an unknown kind is the op's own permanent
			// rejection, as inside a larger batch (and as REST's /batch).
			res, err = []core.PushResult{{OpID: ops[0].OpID, Status: core.StatusRejected, Permanent: true, Reason: err.Error()}}, nil
		}
		if err == nil && len(res) != len(ops) {
			err = fmt.Errorf("websocket: the authority answered %d results for %d ops", len(res), len(ops))
		}
		if err != nil {
			so.enqueue(errorFrame(id, err))
			return
		}
	}
	out, err := appendResults(make([]byte, 0, resultsFrameSize(ops, res)), id, ops, res)
	if err != nil {
		so.enqueue(errorFrame(id, err))
		return
	}
	so.enqueueBytes(out)
}

func (so *socket) get(ctx context.Context, id int64, f *clientFrame) {
	if so.srv.getter == nil {
		so.enqueue(serverFrame{T: tError, ID: id, Status: http.StatusNotImplemented, Error: wire.CodeNotImplemented,
			Message: "this authority does not fetch single records"})
		return
	}
	if f.Kind == "" || f.RID == "" {
		so.enqueue(errorFrame(id, fmt.Errorf("%w: get needs a kind and a rid", core.ErrInvalid)))
		return
	}
	rec, err := so.srv.getter.Get(ctx, f.Kind, f.RID)
	if err != nil {
		so.enqueue(errorFrame(id, err))
		return
	}
	b, err := encodeRecord(&rec)
	if err != nil {
		so.enqueue(errorFrame(id, err))
		return
	}
	so.enqueue(serverFrame{T: tRecord, ID: id, Record: b})
}

// subscribe makes the subscription, acknowledges it once it is in force,
// and forwards its notices until it ends.
func (so *socket) subscribe(ctx context.Context, id int64, f *clientFrame) {
	if so.srv.sub == nil {
		so.enqueue(serverFrame{T: tError, ID: id, Status: http.StatusNotImplemented, Error: wire.CodeNotImplemented,
			Message: "this authority does not stream notices"})
		return
	}
	so.mu.Lock()
	if len(so.subs) >= so.srv.lim.MaxInFlight {
		so.mu.Unlock()
		so.enqueue(serverFrame{T: tError, ID: id, Status: http.StatusTooManyRequests, Error: wire.CodeRateLimited,
			Message: "too many subscriptions on this socket"})
		return
	}
	sctx, cancel := context.WithCancel(ctx)
	so.subs[id] = cancel
	so.mu.Unlock()
	ch, err := so.srv.sub.Subscribe(sctx, f.Kinds)
	if err != nil {
		so.mu.Lock()
		delete(so.subs, id)
		so.mu.Unlock()
		cancel()
		so.enqueue(errorFrame(id, err))
		return
	}
	so.enqueue(serverFrame{T: tOK, ID: id})
	// The forwarder outlives the request: it no longer counts in flight.
	so.bg.Add(1)
	go func() {
		defer so.bg.Done()
		defer cancel()
		for n := range ch {
			nf := noticeFrame{T: tNotice, Sub: id, Kind: n.Kind, UpdatedAt: core.FormatTime(n.UpdatedAt), ID: n.ID, Gap: n.Gap}
			so.enqueue(nf)
		}
		if sctx.Err() == nil && so.ctx.Err() == nil {
			// The authority ended the subscription (it is closing).
			so.closeWith(ws.StatusGoingAway, "the subscription ended")
		}
	}()
}
