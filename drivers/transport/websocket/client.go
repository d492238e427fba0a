package websocket

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	ws "github.com/coder/websocket"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/internal/jsonscan"
	"github.com/offsync/offsync/tracing"
)

// Options configure a Client. The zero value (or nil) is usable.
type Options struct {
	// Token returns the bearer token sent with the handshake. It is asked
	// with refresh=false for each new socket and with refresh=true after the
	// server closed a socket with 4001 (refused or expired token). Nil sends
	// none.
	Token wire.TokenSource
	// HTTPClient makes the handshake (TLS settings, proxies); nil means a
	// client of this package's own.
	HTTPClient *http.Client
	// TLS configures the wss:// connections of the client's own HTTP client
	// (RootCAs: a custom CA); nil uses the system's roots. Ignored when
	// HTTPClient is set.
	TLS *tls.Config
	// WrapConn, when set, wraps every connection the client dials (fault
	// injection, accounting). It is ignored when HTTPClient is set.
	WrapConn func(net.Conn) net.Conn
	// Timeout bounds the handshake and each request whose context has no
	// deadline. Zero means 30 seconds.
	Timeout time.Duration
	// PageSize is the limit sent with a pull whose request has none; default 500.
	PageSize int
	// Backoff paces the reconnects of a client with subscriptions; zero
	// means wire.DefaultBackoff.
	Backoff wire.Backoff
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger
}

// Client is a core.Transport over one multiplexed socket. It connects
// lazily, on its first call; requests are numbered and answered out of
// order; a socket lost while subscriptions are open is re-opened with
// backoff, every subscription made again, and a Notice with Gap delivered
// on each. It never retries a request by itself, except once after the
// server refused the token (4001): the engine is the retry layer. Close
// ends every goroutine it started.
type Client struct {
	url     string
	token   wire.TokenSource
	hc      *http.Client
	ownHC   bool
	timeout time.Duration
	page    int
	backoff wire.Backoff
	log     *slog.Logger

	ctx    context.Context // the client's life
	cancel context.CancelFunc
	wg     sync.WaitGroup
	nextID atomic.Int64

	mu       sync.Mutex
	sess     *session      // the live socket, or nil
	dialing  chan struct{} // closed when the dial in progress ends
	dialErr  error
	refresh  bool // the last socket was refused with 4001
	subs     map[*subscription]struct{}
	sessions int  // sockets opened so far
	superOn  bool // the reconnect supervisor runs
	closed   bool
}

var (
	_ core.Transport    = (*Client)(nil)
	_ core.Getter       = (*Client)(nil)
	_ core.Subscriber   = (*Client)(nil)
	_ core.Batcher      = (*Client)(nil)
	_ core.Pipeliner    = (*Client)(nil)
	_ core.PageStreamer = (*Client)(nil)
)

// NewClient returns a client for the socket at rawURL (ws://host:port/ws or
// wss://...). Nothing is dialed until the first call.
func NewClient(rawURL string, opts *Options) *Client {
	var o Options
	if opts != nil {
		o = *opts
	}
	c := &Client{url: rawURL, token: o.Token, hc: o.HTTPClient, timeout: o.Timeout, page: o.PageSize,
		backoff: o.Backoff, log: o.Logger, subs: map[*subscription]struct{}{}}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if o.TLS != nil {
			tr.TLSClientConfig = o.TLS.Clone()
		}
		if o.WrapConn != nil {
			d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
			wrap := o.WrapConn
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return wrap(conn), nil
			}
		}
		c.hc = &http.Client{Transport: tr}
		c.ownHC = true
	}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	if c.page <= 0 {
		c.page = 500
	}
	if c.backoff == (wire.Backoff{}) {
		c.backoff = wire.DefaultBackoff
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// Close closes the socket (1000) and ends every goroutine of the client;
// open subscriptions' channels are closed. Calls after Close fail with
// core.ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	s := c.sess
	c.mu.Unlock()
	c.cancel()
	if s != nil {
		s.close(ws.StatusNormalClosure, "client closed")
	}
	c.wg.Wait()
	if c.ownHC {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// maxAnswer bounds one frame the client reads.
const maxAnswer = 1 << 30

// session is one socket.
type session struct {
	c     *ws.Conn
	hello inFrame
	log   *slog.Logger

	wmu     sync.Mutex // orders ids and writes
	mu      sync.Mutex
	pending map[int64]chan *inFrame
	streams map[int64]*pageStream   // by the pullPages request's id
	subs    map[int64]*subscription // by the sub request's id
	done    chan struct{}           // closed when the socket is gone
	err     error                   // why
	code    ws.StatusCode           // the close code received, or -1
	watch   *time.Timer             // heartbeat watchdog
	silence time.Duration           // how long the watchdog waits
}

// heard resets the heartbeat watchdog: the server is there.
func (s *session) heard() {
	s.mu.Lock()
	if s.watch != nil && s.alive() {
		s.watch.Reset(s.silence)
	}
	s.mu.Unlock()
}

func (s *session) close(code ws.StatusCode, reason string) {
	s.c.Close(code, reason)
}

// fail records why the socket ended; the first reason wins.
func (s *session) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		return
	default:
	}
	s.err = err
	s.code = ws.CloseStatus(err)
	close(s.done)
	if s.watch != nil {
		s.watch.Stop()
	}
}

func (s *session) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// session returns the live socket, dialing one (once for concurrent
// callers) when there is none.
func (c *Client) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, fmt.Errorf("websocket: %w", core.ErrClosed)
		}
		if c.sess != nil && c.sess.alive() {
			s := c.sess
			c.mu.Unlock()
			return s, nil
		}
		if c.dialing != nil {
			ch := c.dialing
			c.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, netErr(ctx, "connect", ctx.Err())
			}
			c.mu.Lock()
			err := c.dialErr
			s := c.sess
			c.mu.Unlock()
			if err != nil {
				return nil, err
			}
			if s != nil && s.alive() {
				return s, nil
			}
			continue
		}
		ch := make(chan struct{})
		c.dialing = ch
		refresh := c.refresh
		c.mu.Unlock()

		s, err := c.connect(ctx, refresh)

		c.mu.Lock()
		c.dialing = nil
		c.dialErr = err
		if err == nil {
			c.sess = s
			c.refresh = false
			c.sessions++
		}
		reconnect := err == nil && c.sessions > 1
		subs := make([]*subscription, 0, len(c.subs))
		for sub := range c.subs {
			subs = append(subs, sub)
		}
		c.mu.Unlock()
		close(ch)
		if err != nil {
			return nil, err
		}
		if reconnect {
			c.resubscribe(s, subs)
		}
		return s, nil
	}
}

// netErr classifies a failed exchange: always core.ErrUnavailable, plus the
// caller's context error when it ended.
func netErr(ctx context.Context, what string, err error) error {
	if ce := ctx.Err(); ce != nil {
		return fmt.Errorf("websocket: %s: %w (%w)", what, core.ErrUnavailable, ce)
	}
	return fmt.Errorf("websocket: %s: %w: %v", what, core.ErrUnavailable, err)
}

// connect dials a socket, reads its hello and starts its reader.
func (c *Client) connect(ctx context.Context, refresh bool) (*session, error) {
	tok, err := wire.Token(ctx, "websocket", c.token, refresh)
	if err != nil {
		return nil, err
	}
	hdr := http.Header{}
	if tok != "" {
		hdr.Set("Authorization", "Bearer "+tok)
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	s := &session{log: c.log, pending: map[int64]chan *inFrame{}, streams: map[int64]*pageStream{},
		subs: map[int64]*subscription{}, done: make(chan struct{}), code: -1}
	conn, resp, err := ws.Dial(dctx, c.url, &ws.DialOptions{HTTPClient: c.hc, HTTPHeader: hdr,
		Subprotocols:   []string{Subprotocol},
		OnPingReceived: func(context.Context, []byte) bool { s.heard(); return true }})
	if err != nil {
		if resp != nil {
			if resp.Body != nil {
				resp.Body.Close()
			}
			if resp.StatusCode != http.StatusSwitchingProtocols && resp.StatusCode != 0 {
				return nil, wire.Errorf("websocket: connect", resp.StatusCode, "", http.StatusText(resp.StatusCode))
			}
		}
		return nil, netErr(ctx, "connect", err)
	}
	if conn.Subprotocol() != Subprotocol {
		conn.CloseNow()
		return nil, fmt.Errorf("websocket: connect: %w: the server did not accept the subprotocol %s", core.ErrUnavailable, Subprotocol)
	}
	// A page is not bounded by maxMessage; an answer is bounded as a REST
	// response body is.
	conn.SetReadLimit(maxAnswer)
	s.c = conn
	// The hello comes first.
	_, b, err := conn.Read(dctx)
	if err != nil {
		conn.CloseNow()
		if ws.CloseStatus(err) == CloseUnauthorized {
			c.mu.Lock()
			c.refresh = true
			c.mu.Unlock()
			return nil, fmt.Errorf("websocket: connect: %w (close 4001)", core.ErrUnauthorized)
		}
		return nil, netErr(ctx, "reading the hello", err)
	}
	if err := json.Unmarshal(b, &s.hello); err != nil || s.hello.T != tHello {
		conn.CloseNow()
		return nil, fmt.Errorf("websocket: connect: %w: the first frame is not a hello", core.ErrUnavailable)
	}
	if s.hello.Heartbeat > 0 {
		// Two silent periods (the server pings every period) mean a
		// half-open connection: cut it.
		s.mu.Lock()
		s.silence = 2 * time.Duration(s.hello.Heartbeat) * time.Millisecond
		s.watch = time.AfterFunc(s.silence, func() {
			s.fail(fmt.Errorf("websocket: %w: nothing heard for two heartbeats", core.ErrUnavailable))
			conn.CloseNow()
		})
		s.mu.Unlock()
	}
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.read(s) }()
	if s.hello.Auth && tok != "" {
		// The server expects an auth frame (it did not take the header).
		if _, err := c.roundTrip(ctx, s, clientFrame{T: tAuth, Token: tok}, nil); err != nil {
			s.close(ws.StatusNormalClosure, "")
			return nil, err
		}
	}
	return s, nil
}

// read delivers the socket's frames until it ends.
func (c *Client) read(s *session) {
	defer s.c.CloseNow()
	for {
		buf, err := readFrame(s.c)
		if err != nil {
			if ws.CloseStatus(err) == CloseUnauthorized {
				c.mu.Lock()
				c.refresh = true
				c.mu.Unlock()
			}
			s.fail(err)
			return
		}
		s.heard()
		f := new(inFrame)
		b := buf.Bytes()
		if id, ok := pageFrameID(b); ok {
			// A page is read by Pull (or a stream), which knows its kind
			// and gives the buffer back once it has decoded it.
			f.T, f.page, f.buf = tPage, b, buf
			f.ID = strconv.AppendInt(nil, id, 10)
		} else {
			var err error
			f, err = decodeAnswer(b) // copies what it keeps
			putFrameBuf(buf)
			if err != nil {
				c.log.Warn("websocket: ignoring an unreadable frame", "err", err)
				continue
			}
		}
		if f.T == tNotice {
			s.mu.Lock()
			sub := s.subs[f.Sub]
			s.mu.Unlock()
			if sub != nil {
				sub.deliver(c, f)
			}
			continue
		}
		var id int64
		if json.Unmarshal(f.ID, &id) != nil {
			continue
		}
		s.mu.Lock()
		ch, ok := s.pending[id]
		delete(s.pending, id)
		var st *pageStream
		if !ok {
			st = s.streams[id]
		}
		s.mu.Unlock()
		switch {
		case ch != nil:
			ch <- f
		case st != nil:
			st.deliver(f) // never blocks
		default:
			f.release()
		}
	}
}

// decodeAnswer reads a frame other than a page; an error means it is
// unreadable (the client ignores it). What it returns does not share b.
func decodeAnswer(b []byte) (*inFrame, error) {
	if f, ok := decodeResults(b); ok {
		return f, nil // a push's answer, read without reflection
	}
	f := new(inFrame)
	if err := json.Unmarshal(b, f); err != nil {
		return nil, err
	}
	return f, nil
}

// frameBufs recycles the buffers the client reads frames into: a page is
// read into a buffer that already has its size, rather than grown from
// nothing for every frame.
var frameBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledFrame bounds the buffers kept for reuse.
const maxPooledFrame = 8 << 20

// readFrame reads the next message of c into a buffer of frameBufs.
func readFrame(c *ws.Conn) (*bytes.Buffer, error) {
	_, r, err := c.Reader(context.Background())
	if err != nil {
		return nil, err
	}
	buf := frameBufs.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		putFrameBuf(buf)
		return nil, err
	}
	return buf, nil
}

func putFrameBuf(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledFrame {
		frameBufs.Put(buf)
	}
}

// release gives a page frame's buffer back; f.page is gone.
func (f *inFrame) release() {
	if f.buf != nil {
		putFrameBuf(f.buf)
		f.buf, f.page = nil, nil
	}
}

// errRefused is a request cut by a 4001 close: the client re-sends it once
// on a new socket with a refreshed token.
var errRefused = errors.New("websocket: token refused (4001)")

// send numbers request f and writes it on s; register, when set, is
// called with its id before it is written (its answer may come at once).
// On an error nothing more is to be expected for the request.
func (c *Client) send(ctx context.Context, s *session, f clientFrame, register func(id int64)) (int64, error) {
	// Ids must increase on a socket: take one and send in that order.
	s.wmu.Lock()
	id := c.nextID.Add(1)
	f.ID = &id
	if f.T != tAuth && f.T != tUnsub {
		f.Traceparent = tracing.Traceparent(ctx)
	}
	var b []byte
	var err error
	if f.T == tPush {
		b = appendPushFrame(make([]byte, 0, pushFrameSize(f.Ops, f.Traceparent)), id, f.Ops, f.Traceparent)
	} else {
		b, err = json.Marshal(f)
	}
	if err != nil {
		s.wmu.Unlock()
		return id, fmt.Errorf("websocket: %s: %w: %v", f.T, core.ErrInvalid, err)
	}
	if max := s.hello.MaxMessage; max > 0 && int64(len(b)) > max {
		s.wmu.Unlock()
		return id, fmt.Errorf("websocket: %s: %w: %d bytes, the server takes at most %d", f.T, core.ErrTooLarge, len(b), max)
	}
	if register != nil {
		register(id)
	}
	err = c.write(s, b)
	s.wmu.Unlock()
	if err != nil {
		return id, c.lost(ctx, s, f.T)
	}
	return id, nil
}

// write writes one frame on s. The write is bounded by the timeout, not by
// a caller's context: a write cut midway would cut the socket for every
// other request. When it fails, the socket has ended or is ended.
func (c *Client) write(s *session, b []byte) error {
	wctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	err := s.c.Write(wctx, ws.MessageText, b)
	cancel()
	if err != nil {
		// A write fails once the server has closed the socket: its close
		// code (4001, a refused or expired token) is the reader's to
		// report, so the reader gets the first word, within the timeout.
		t := time.NewTimer(c.timeout)
		select {
		case <-s.done:
		case <-t.C:
			s.fail(err)
			s.c.CloseNow()
		}
		t.Stop()
	}
	return err
}

// roundTrip sends one request on s and waits for its answer. onID, when
// set, is called with the request's id before it is sent.
func (c *Client) roundTrip(ctx context.Context, s *session, f clientFrame, onID func(int64)) (*inFrame, error) {
	ch := make(chan *inFrame, 1)
	id, err := c.send(ctx, s, f, func(id int64) {
		if onID != nil {
			onID(id)
		}
		s.mu.Lock()
		s.pending[id] = ch
		s.mu.Unlock()
	})
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	select {
	case a := <-ch:
		return a, nil
	case <-s.done:
		return nil, c.lost(ctx, s, f.T)
	case <-ctx.Done():
		return nil, netErr(ctx, f.T, ctx.Err())
	}
}

// lost is the error of a request whose socket ended before its answer.
func (c *Client) lost(ctx context.Context, s *session, what string) error {
	<-s.done
	if s.code == CloseUnauthorized {
		return errRefused
	}
	return netErr(ctx, what, fmt.Errorf("the socket ended before the answer: %v", s.err))
}

// call sends f on the live socket (dialing one when needed) and returns
// the answer; a 4001 close re-sends it once with a refreshed token.
func (c *Client) call(ctx context.Context, f clientFrame) (*inFrame, error) {
	for attempt := 0; ; attempt++ {
		s, err := c.session(ctx)
		if err != nil {
			if errors.Is(err, core.ErrUnauthorized) && attempt == 0 && c.token != nil {
				continue
			}
			return nil, err
		}
		a, err := c.roundTrip(ctx, s, f, nil)
		if errors.Is(err, errRefused) {
			if attempt == 0 && c.token != nil {
				continue
			}
			return nil, fmt.Errorf("websocket: %s: %w (close 4001)", f.T, core.ErrUnauthorized)
		}
		return a, err
	}
}

// answerErr turns an error frame into a classified error.
func answerErr(what string, a *inFrame) error {
	return wire.Errorf("websocket: "+what, a.Status, a.Error, a.Message)
}

// unexpected is the error of an answer of the wrong type.
func unexpected(what string, a *inFrame) error {
	return fmt.Errorf("websocket: %s: %w: unexpected %q frame", what, core.ErrUnavailable, a.T)
}

// Reauth asks the token source for a fresh token and hands it to the live
// socket with an auth frame, without reconnecting. Without a live socket
// it does nothing: the next socket takes the token from the source.
func (c *Client) Reauth(ctx context.Context) error {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s == nil || !s.alive() {
		return nil
	}
	tok, err := wire.Token(ctx, "websocket", c.token, true)
	if err != nil {
		return err
	}
	a, err := c.roundTrip(ctx, s, clientFrame{T: tAuth, Token: tok}, nil)
	if errors.Is(err, errRefused) {
		return fmt.Errorf("websocket: auth: %w (close 4001)", core.ErrUnauthorized)
	}
	if err != nil {
		return err
	}
	if a.T == tError {
		return answerErr("auth", a)
	}
	return nil
}

// BatchLimits implements core.Batcher with the hello's maxBatch and maxLimit.
func (c *Client) BatchLimits(ctx context.Context) (core.BatchLimits, error) {
	s, err := c.session(ctx)
	if err != nil {
		return core.BatchLimits{}, err
	}
	n := s.hello.MaxBatch
	if n <= 0 {
		n = 1000
	}
	return core.BatchLimits{MaxOps: n, MaxLimit: s.hello.MaxLimit}, nil
}

// pushDepth is how many pushes the engine keeps in flight on one socket:
// with two, the next batch is on its way while the server applies one, so
// the server does not wait for the replica between batches.
const pushDepth = 2

// PushDepth implements core.Pipeliner: pushes share the socket and are
// answered by id. It is at most half the server's maxInFlight (the hello's),
// so that pulls and subscriptions keep room beside them.
func (c *Client) PushDepth() int {
	c.mu.Lock()
	s := c.sess
	c.mu.Unlock()
	if s != nil && s.hello.MaxInFlight > 0 {
		return min(pushDepth, max(1, s.hello.MaxInFlight/2))
	}
	return pushDepth
}

// Pull implements core.Transport.
func (c *Client) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	if req.Kind == "" {
		return core.Page{}, fmt.Errorf("websocket: pull: %w: empty kind", core.ErrInvalid)
	}
	f := c.pullFrame(tPull, req)
	what := "pull " + req.Kind
	a, err := c.call(ctx, f)
	if err != nil {
		return core.Page{}, err
	}
	switch a.T {
	case tPage:
	case tError:
		return core.Page{}, answerErr(what, a)
	default:
		return core.Page{}, unexpected(what, a)
	}
	page, err := readPage(req.Kind, a, *f.Limit)
	if err != nil {
		return core.Page{}, fmt.Errorf("websocket: %s: %w", what, err)
	}
	return page, nil
}

// readPage reads the records of page frame a, of kind, answering a pull
// of limit records.
func readPage(kind string, a *inFrame, limit int) (core.Page, error) {
	if a.page != nil {
		defer a.release() // the page keeps nothing of the frame
		return decodePage(kind, a.page, limit)
	}
	page := core.Page{Records: make([]core.Record, 0, len(a.Items)), Remaining: -1}
	if a.NextPageToken != nil {
		page.NextPageToken = *a.NextPageToken
	}
	if a.Remaining != nil && *a.Remaining >= 0 {
		page.Remaining = *a.Remaining
	}
	for _, it := range a.Items {
		rec, err := decodeRecord(kind, it)
		if err != nil {
			return core.Page{}, err
		}
		page.Records = append(page.Records, rec)
	}
	return page, nil
}

// Get implements core.Getter.
func (c *Client) Get(ctx context.Context, kind, id string) (core.Record, error) {
	what := "get " + kind + "/" + id
	a, err := c.call(ctx, clientFrame{T: tGet, Kind: kind, RID: id})
	if err != nil {
		return core.Record{}, err
	}
	switch a.T {
	case tRecord:
	case tError:
		return core.Record{}, answerErr(what, a)
	default:
		return core.Record{}, unexpected(what, a)
	}
	rec, err := decodeRecord(kind, a.Record)
	if err != nil {
		return core.Record{}, fmt.Errorf("websocket: %s: %w", what, err)
	}
	return rec, nil
}

// Push implements core.Transport: the ops go in push frames of at most
// maxBatch ops (and under maxMessage bytes), one after the other. Once an op
// for a record is not applied, the later ops for that record are answered
// Skipped. A failure that is not an op's own (the socket lost, 401, 403,
// 429, 5xx) answers the remaining ops StatusRetry, or fails Push when no op
// was answered.
func (c *Client) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	maxOps := s.hello.MaxBatch
	if maxOps <= 0 {
		maxOps = 1000
	}
	budget := s.hello.MaxMessage - 256
	if budget <= 0 {
		budget = 1 << 62
	}
	results := make([]core.PushResult, len(ops))
	blocked := map[[2]string]bool{}
	var fail error
	var retryAfter time.Duration
	for start := 0; start < len(ops) && fail == nil; {
		var idx []int
		var batch []wireOp
		size := int64(0)
		i := start
		for ; i < len(ops) && len(batch) < maxOps; i++ {
			op := &ops[i]
			if blocked[[2]string{op.Kind, op.ID}] {
				results[i] = core.PushResult{OpID: op.OpID, Status: core.StatusSkipped, Reason: "skipped"}
				continue
			}
			if res, ok := checkOp(op); !ok {
				results[i] = res
				blocked[[2]string{op.Kind, op.ID}] = true
				continue
			}
			w := encodeOp(op)
			n := int64(len(w.Payload) + len(w.OpID) + len(w.Kind) + len(w.ID) + 160)
			if n > budget {
				results[i] = core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Permanent: true,
					Reason: fmt.Sprintf("too_large: the op is over the server's maxMessage (%d bytes)", s.hello.MaxMessage)}
				blocked[[2]string{op.Kind, op.ID}] = true
				continue
			}
			if len(batch) > 0 && size+n > budget {
				break
			}
			size += n
			idx = append(idx, i)
			batch = append(batch, w)
		}
		start = i
		if len(batch) == 0 {
			continue
		}
		fail, retryAfter = c.pushBatch(ctx, ops, idx, batch, results, blocked)
	}
	return wire.FinishPush(ops, results, fail, retryAfter)
}

// checkOp refuses an op that cannot be sent, without a round trip.
func checkOp(op *core.Op) (core.PushResult, bool) {
	switch op.Type {
	case core.OpDelete:
		return core.PushResult{}, true
	case core.OpUpsert:
		if len(op.Payload) == 0 || string(op.Payload) == "null" {
			return core.PushResult{}, true
		}
		// A JSON object, checked without decoding it: the push frame
		// carries the payload as it is.
		if p := bytes.TrimSpace(op.Payload); len(p) > 0 && p[0] == '{' && jsonscan.Valid(p) {
			return core.PushResult{}, true
		}
		return core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Permanent: true,
			Reason: "payload is not a JSON object"}, false
	}
	return core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Permanent: true,
		Reason: fmt.Sprintf("unknown op type %q", op.Type)}, false
}

// pushBatch sends one push frame and settles its ops' results. A push
// refused as a whole as malformed (400) is re-sent op by op, so that the op
// at fault is found and the others go through.
func (c *Client) pushBatch(ctx context.Context, ops []core.Op, idx []int, batch []wireOp,
	results []core.PushResult, blocked map[[2]string]bool) (error, time.Duration) {
	a, err := c.call(ctx, clientFrame{T: tPush, Ops: batch})
	if err != nil {
		return err, 0
	}
	switch a.T {
	case tResults:
	case tError:
		if (a.Status == http.StatusBadRequest || a.Status == http.StatusRequestEntityTooLarge) && len(batch) > 1 {
			c.log.WarnContext(ctx, "websocket: the push was refused as a whole; sending op by op", "answer", a.Message)
			for n, i := range idx {
				if blocked[[2]string{ops[i].Kind, ops[i].ID}] {
					results[i] = core.PushResult{OpID: ops[i].OpID, Status: core.StatusSkipped, Reason: "skipped"}
					continue
				}
				if err, after := c.pushBatch(ctx, ops, idx[n:n+1], batch[n:n+1], results, blocked); err != nil {
					return err, after
				}
			}
			return nil, 0
		}
		if res, retry := verdict(&ops[idx[0]], &wireResult{OpID: ops[idx[0]].OpID, Status: a.Status, Error: a.Error, Message: a.Message}, new([]byte)); retry != nil {
			return retry, time.Duration(a.RetryAfter * float64(time.Second))
		} else if len(idx) == 1 {
			results[idx[0]] = res
			if res.Status != core.StatusApplied {
				blocked[[2]string{ops[idx[0]].Kind, ops[idx[0]].ID}] = true
			}
			return nil, 0
		}
		return answerErr("push", a), 0
	default:
		return unexpected("push", a), 0
	}
	// The answered records' data, in one allocation.
	size := 0
	for n := range a.Results {
		size += len(a.Results[n].Record) + len(a.Results[n].Current)
	}
	slab := make([]byte, 0, size)
	for n, i := range idx {
		op := &ops[i]
		if n >= len(a.Results) || a.Results[n].OpID != op.OpID {
			// Left out of the answer: whether it was applied is unknown;
			// the engine re-sends it with the same op id.
			results[i] = core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: "missing from the push answer"}
			blocked[[2]string{op.Kind, op.ID}] = true
			continue
		}
		res, retry := verdict(op, &a.Results[n], &slab)
		if retry != nil {
			res = core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: retry.Error(),
				RetryAfter: time.Duration(a.Results[n].RetryAfter * float64(time.Second))}
		}
		results[i] = res
		if res.Status != core.StatusApplied {
			blocked[[2]string{op.Kind, op.ID}] = true
		}
	}
	return nil, 0
}

// verdict maps one op's answer to its PushResult with the wire table; an
// answer that is about the call rather than the op (401, 403, 429, 5xx) is
// returned as an error: the op is to be retried. The record's data is
// appended to *slab (the records of one results frame share it).
func verdict(op *core.Op, r *wireResult, slab *[]byte) (core.PushResult, error) {
	res := core.PushResult{OpID: op.OpID}
	what := func() string { return fmt.Sprintf("websocket: push %s %s/%s", op.Type, op.Kind, op.ID) }
	status, permanent, ok := wire.ResultOf(r.Status, r.Error)
	if !ok {
		return res, wire.Errorf(what(), r.Status, r.Error, r.Message)
	}
	res.Status, res.Permanent = status, permanent
	switch status {
	case core.StatusApplied:
		if len(r.Record) == 0 || string(r.Record) == "null" {
			return res, fmt.Errorf("%s: %w: applied without the stored record", what(), core.ErrUnavailable)
		}
		rec, err := decodeRecordIn(op.Kind, r.Record, slab)
		if err != nil {
			return res, fmt.Errorf("%s: %w: unreadable answer: %v", what(), core.ErrUnavailable, err)
		}
		res.Record = &rec
	case core.StatusConflict:
		if len(r.Current) > 0 && string(r.Current) != "null" {
			rec, err := decodeRecordIn(op.Kind, r.Current, slab)
			if err != nil {
				return res, fmt.Errorf("%s: %w: unreadable conflict: %v", what(), core.ErrUnavailable, err)
			}
			res.Record = &rec
		}
	case core.StatusRejected, core.StatusSkipped:
		res.Reason = r.Error
		if r.Message != "" {
			res.Reason += ": " + r.Message
		}
		if status == core.StatusRejected && r.Permanent != nil {
			res.Permanent = *r.Permanent
		}
	}
	return res, nil
}

// subscription is one Subscribe call. Notices are coalesced per kind
// while the caller is behind, so the reader never blocks on it.
type subscription struct {
	kinds []string
	ctx   context.Context
	out   chan core.Notice

	mu      sync.Mutex
	pending map[string]core.Notice
	order   []string
	gap     bool
	wake    chan struct{}
	id      int64 // the server's name for it on the current socket
}

func (sub *subscription) deliver(c *Client, f *inFrame) {
	var rid string
	_ = json.Unmarshal(f.ID, &rid)
	n := core.Notice{Kind: f.Kind, ID: rid, Gap: f.Gap}
	if f.UpdatedAt != "" {
		t, err := core.ParseTime(f.UpdatedAt)
		if err != nil {
			c.log.Warn("websocket: ignoring a notice with a bad timestamp", "err", err)
			return
		}
		n.UpdatedAt = t
	}
	sub.push(n)
}

// push queues n for the caller: the newest notice per kind, a gap once.
func (sub *subscription) push(n core.Notice) {
	sub.mu.Lock()
	if n.Gap {
		sub.gap = true
	} else {
		if _, ok := sub.pending[n.Kind]; !ok {
			sub.order = append(sub.order, n.Kind)
		}
		sub.pending[n.Kind] = n
	}
	sub.mu.Unlock()
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// pump moves queued notices to the caller's channel until ctx ends.
func (sub *subscription) pump(ctx context.Context) {
	defer close(sub.out)
	for {
		sub.mu.Lock()
		var n core.Notice
		have := false
		switch {
		case sub.gap:
			n, have, sub.gap = core.Notice{Gap: true}, true, false
		case len(sub.order) > 0:
			k := sub.order[0]
			sub.order = sub.order[1:]
			n, have = sub.pending[k], true
			delete(sub.pending, k)
		}
		sub.mu.Unlock()
		if !have {
			select {
			case <-sub.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case sub.out <- n:
		case <-ctx.Done():
			return
		}
	}
}

// Subscribe implements core.Subscriber. It returns once the server has
// acknowledged the subscription (it is then in force). If the socket is
// lost, the client reconnects with backoff, subscribes again, and delivers
// a Notice with Gap. The channel is closed when ctx is done or the client
// is closed.
func (c *Client) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	sub := &subscription{kinds: append([]string(nil), kinds...), out: make(chan core.Notice, 16),
		pending: map[string]core.Notice{}, wake: make(chan struct{}, 1)}
	// Known to the client first, so that a reconnect meanwhile subscribes
	// it again.
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("websocket: subscribe: %w", core.ErrClosed)
	}
	c.subs[sub] = struct{}{}
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.subs, sub)
		c.mu.Unlock()
	}
	s, err := c.session(ctx)
	if err != nil {
		forget()
		return nil, err
	}
	if err := c.subscribeOn(ctx, s, sub); err != nil {
		forget()
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("websocket: subscribe: %w", core.ErrClosed)
	}
	if !c.superOn {
		c.superOn = true
		c.wg.Add(1)
		go c.supervise()
	}
	// The subscription lives until ctx or the client ends.
	pctx, cancel := context.WithCancel(c.ctx)
	stop := context.AfterFunc(ctx, cancel)
	c.wg.Add(1) // under mu, before Close's Wait
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer stop()
		defer cancel()
		sub.pump(pctx)
		c.mu.Lock()
		delete(c.subs, sub)
		cur := c.sess
		c.mu.Unlock()
		if cur != nil && cur.alive() && c.ctx.Err() == nil {
			sub.mu.Lock()
			id := sub.id
			sub.mu.Unlock()
			cur.mu.Lock()
			delete(cur.subs, id)
			cur.mu.Unlock()
			uctx, ucancel := context.WithTimeout(c.ctx, c.timeout)
			_, _ = c.roundTrip(uctx, cur, clientFrame{T: tUnsub, Sub: id}, nil)
			ucancel()
		}
	}()
	return sub.out, nil
}

// subscribeOn sends sub's sub frame on s and waits for the acknowledgement.
func (c *Client) subscribeOn(ctx context.Context, s *session, sub *subscription) error {
	var id int64
	// Registered before it is sent: a notice may follow the ack at once.
	a, err := c.roundTrip(ctx, s, clientFrame{T: tSub, Kinds: sub.kinds}, func(n int64) {
		id = n
		s.mu.Lock()
		s.subs[id] = sub
		s.mu.Unlock()
	})
	if err == nil && a.T != tOK {
		if a.T == tError {
			err = answerErr("subscribe", a)
		} else {
			err = unexpected("subscribe", a)
		}
	}
	if err != nil {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
		if errors.Is(err, errRefused) {
			err = fmt.Errorf("websocket: subscribe: %w (close 4001)", core.ErrUnauthorized)
		}
		return err
	}
	sub.mu.Lock()
	sub.id = id
	sub.mu.Unlock()
	return nil
}

// resubscribe makes every subscription again on a new socket, then tells
// each one about the gap.
func (c *Client) resubscribe(s *session, subs []*subscription) {
	for _, sub := range subs {
		ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
		err := c.subscribeOn(ctx, s, sub)
		cancel()
		if err != nil {
			c.log.Warn("websocket: subscribing again after a reconnect failed", "err", err)
			s.fail(err)
			s.c.CloseNow()
			return
		}
	}
	for _, sub := range subs {
		sub.push(core.Notice{Gap: true})
	}
}

// supervise re-opens a lost socket with backoff while subscriptions are
// open; it ends when none is left or the client closes.
func (c *Client) supervise() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		s := c.sess
		if len(c.subs) == 0 || c.closed {
			c.superOn = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if s != nil && s.alive() {
			select {
			case <-s.done:
			case <-c.ctx.Done():
				c.mu.Lock()
				c.superOn = false
				c.mu.Unlock()
				return
			}
			continue
		}
		for attempt := 0; ; attempt++ {
			t := time.NewTimer(c.backoff.Delay(attempt))
			select {
			case <-c.ctx.Done():
				t.Stop()
			case <-t.C:
			}
			if c.ctx.Err() != nil {
				break
			}
			if _, err := c.session(c.ctx); err != nil {
				c.log.Warn("websocket: reconnecting failed", "err", err, "attempt", attempt+1)
				continue
			}
			break
		}
	}
}
