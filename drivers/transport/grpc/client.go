package grpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	grpcgo "google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/offsync/offsync/core"
	syncv1 "github.com/offsync/offsync/drivers/transport/grpc/proto/offsync/sync/v1"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/tracing"
)

// Options configure a Client. The zero value (or nil) is usable.
type Options struct {
	// Conn is the connection to use, as the caller configured it (its
	// interceptors, credentials, balancer...). Close leaves it open. When
	// nil, NewClient dials the URL.
	Conn *grpcgo.ClientConn
	// TLS configures a grpcs:// connection the client dials; nil uses the
	// system's roots.
	TLS *tls.Config
	// Token returns the bearer token sent as metadata authorization with
	// every call; it is asked once more, with refresh=true, after the
	// server answers Unauthenticated, and the call is sent again once. Nil
	// sends none.
	Token func(ctx context.Context, refresh bool) (string, error)
	// Timeout bounds a call whose ctx has no deadline (for Subscribe: until
	// the subscription is in force). Zero means 30 s; negative means none.
	Timeout time.Duration
	// PageSize is the limit of a pull whose request has none; default 500.
	PageSize int
	// MaxMessage bounds a message the client receives; default 64 MiB. A
	// page over it is asked for again with fewer rows.
	MaxMessage int
	// Keepalive is how often the client pings a connection idle for that
	// long, so that an idle Subscribe stream survives NATs and proxies;
	// default 30 s (grpc-go's floor is 10 s). Keep it at or above the
	// server's keepalive_min_time_ms (half its heartbeat, at most 10 s).
	Keepalive time.Duration
	// Backoff paces the re-opening of a broken Subscribe stream; zero uses
	// wire.DefaultBackoff.
	Backoff wire.Backoff
	// Logger receives warnings (a broken stream); nil discards them.
	Logger *slog.Logger
	// DialOptions are added to those of a connection the client dials.
	DialOptions []grpcgo.DialOption
}

// Client is a core.Transport over the offsync.sync.v1.Sync service. It is
// safe for concurrent use. It never retries a call by itself, except once
// after a token refresh: the engine is the retry layer.
type Client struct {
	conn     *grpcgo.ClientConn
	own      bool // Close closes conn
	sync     syncv1.SyncClient
	token    wire.TokenSource
	timeout  time.Duration
	pageSize int
	maxMsg   int
	backoff  wire.Backoff
	log      *slog.Logger

	mu   sync.Mutex
	caps *syncv1.CapabilitiesResponse
	// noStream: the server answered PullPages Unimplemented although it
	// lists it; the client pulls page by page from then on.
	noStream atomic.Bool
}

var (
	_ core.Transport    = (*Client)(nil)
	_ core.Getter       = (*Client)(nil)
	_ core.Subscriber   = (*Client)(nil)
	_ core.Batcher      = (*Client)(nil)
	_ core.Pipeliner    = (*Client)(nil)
	_ core.PageStreamer = (*Client)(nil)
)

// capStreamPull is the capability of a server that serves PullPages.
const capStreamPull = "stream-pull"

const (
	defaultTimeout    = 30 * time.Second
	defaultPageSize   = 500
	defaultMaxMessage = 64 << 20
	defaultKeepalive  = 30 * time.Second
	// messageMargin is what a push leaves free under the server's message
	// limit for the envelope.
	messageMargin = 4 << 10
)

// NewClient returns a client of the authority at rawURL, grpc://host:port
// (plaintext, HTTP/2 without TLS) or grpcs://host:port (TLS). With
// Options.Conn set, rawURL is not used and may be empty. The connection is
// made lazily: a server that is down makes calls fail with
// core.ErrUnavailable, not NewClient.
func NewClient(rawURL string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	c := &Client{conn: o.Conn, token: wire.TokenSource(o.Token), timeout: o.Timeout, pageSize: o.PageSize,
		maxMsg: o.MaxMessage, backoff: o.Backoff, log: o.Logger}
	if c.timeout == 0 {
		c.timeout = defaultTimeout
	}
	if c.pageSize <= 0 {
		c.pageSize = defaultPageSize
	}
	if c.maxMsg <= 0 {
		c.maxMsg = defaultMaxMessage
	}
	if c.backoff == (wire.Backoff{}) {
		c.backoff = wire.DefaultBackoff
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.conn == nil {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "grpc" && u.Scheme != "grpcs") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("grpc: %w: url %q must be grpc://host:port or grpcs://host:port", core.ErrInvalid, rawURL)
		}
		creds := insecure.NewCredentials()
		if u.Scheme == "grpcs" {
			cfg := o.TLS
			if cfg == nil {
				cfg = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			creds = credentials.NewTLS(cfg)
		}
		ka := o.Keepalive
		if ka <= 0 {
			ka = defaultKeepalive
		}
		dopts := append([]grpcgo.DialOption{
			grpcgo.WithTransportCredentials(creds),
			grpcgo.WithKeepaliveParams(keepalive.ClientParameters{Time: ka, Timeout: 20 * time.Second}),
			grpcgo.WithDefaultCallOptions(grpcgo.MaxCallRecvMsgSize(c.maxMsg)),
		}, o.DialOptions...)
		conn, err := grpcgo.NewClient("dns:///"+u.Host, dopts...)
		if err != nil {
			return nil, fmt.Errorf("grpc: %w: %v", core.ErrInvalid, err)
		}
		c.conn, c.own = conn, true
	}
	c.sync = syncv1.NewSyncClient(c.conn)
	return c, nil
}

// Close closes the connection the client dialed (not one given in Options).
func (c *Client) Close() error {
	if !c.own {
		return nil
	}
	return c.conn.Close()
}

// callCtx bounds a call by Timeout when ctx has no deadline.
func (c *Client) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || c.timeout < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// withToken returns ctx carrying the bearer token in its metadata, and the
// trace context (metadata traceparent) when ctx has a span.
func (c *Client) withToken(ctx context.Context, refresh bool) (context.Context, error) {
	if tp := tracing.Traceparent(ctx); tp != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, tracing.Field, tp)
	}
	tok, err := wire.Token(ctx, "grpc", c.token, refresh)
	if err != nil || tok == "" {
		return ctx, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), nil
}

// unary sends one call with the token, once more with a refreshed token
// after Unauthenticated. The error is the RPC's, unmapped.
func unary[Resp any](ctx context.Context, c *Client, call func(ctx context.Context, opts ...grpcgo.CallOption) (Resp, error)) (Resp, error) {
	for attempt := 0; ; attempt++ {
		cctx, err := c.withToken(ctx, attempt > 0)
		if err != nil {
			var zero Resp
			return zero, err
		}
		c.ready(ctx)
		cctx, cancel := c.callCtx(cctx)
		resp, err := call(cctx, grpcgo.MaxCallRecvMsgSize(c.maxMsg))
		cancel()
		c.afterFailure(err)
		if err != nil && attempt == 0 && c.token != nil && status.Code(err) == codes.Unauthenticated {
			continue
		}
		return resp, err
	}
}

// afterFailure makes the connection try again at once after a call failed
// for want of one (Unavailable). gRPC otherwise waits out its own
// reconnect backoff (up to two minutes) and fails every call meanwhile with
// the last connection error; the engine is the retry layer and paces its
// calls itself.
func (c *Client) afterFailure(err error) {
	if err != nil && status.Code(err) == codes.Unavailable {
		c.conn.ResetConnectBackoff()
	}
}

// reconnectWait bounds how long a call waits for a connection in transient
// failure to start connecting again.
const reconnectWait = 100 * time.Millisecond

// ready makes a connection in transient failure connect again before a
// call, so that the call is made on a fresh attempt rather than failed with
// the last one's error. A server that is down still fails the call at once
// (connection refused).
func (c *Client) ready(ctx context.Context) {
	if c.conn.GetState() != connectivity.TransientFailure {
		return
	}
	c.conn.ResetConnectBackoff()
	wctx, cancel := context.WithTimeout(ctx, reconnectWait)
	defer cancel()
	c.conn.WaitForStateChange(wctx, connectivity.TransientFailure)
}

// isLocal reports whether err came from the token source, not the RPC.
func isLocal(err error) bool {
	_, isStatus := status.FromError(err)
	return !isStatus && (errors.Is(err, core.ErrUnauthorized) || errors.Is(err, core.ErrUnavailable) || errors.Is(err, core.ErrForbidden))
}

func (c *Client) mapErr(ctx context.Context, what string, err error) error {
	if isLocal(err) {
		return err
	}
	return clientErr(ctx, what, err)
}

// capabilities asks the server once and caches the answer; a failure is
// not cached.
func (c *Client) capabilities(ctx context.Context) (*syncv1.CapabilitiesResponse, error) {
	c.mu.Lock()
	caps := c.caps
	c.mu.Unlock()
	if caps != nil {
		return caps, nil
	}
	caps, err := unary(ctx, c, func(ctx context.Context, opts ...grpcgo.CallOption) (*syncv1.CapabilitiesResponse, error) {
		return c.sync.Capabilities(ctx, &syncv1.CapabilitiesRequest{}, opts...)
	})
	if err != nil {
		return nil, c.mapErr(ctx, "capabilities", err)
	}
	c.mu.Lock()
	c.caps = caps
	c.mu.Unlock()
	return caps, nil
}

// Capabilities returns what the server states of its limits and features.
func (c *Client) Capabilities(ctx context.Context) (*syncv1.CapabilitiesResponse, error) {
	caps, err := c.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	return proto.Clone(caps).(*syncv1.CapabilitiesResponse), nil
}

// needs fails with errors.ErrUnsupported when the server does not list
// capability (a Subscribe that the engine then replaces with its timer).
func (c *Client) needs(ctx context.Context, what, capability string) error {
	caps, err := c.capabilities(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(caps.GetCapabilities(), capability) {
		return fmt.Errorf("grpc: %s: the server does not list %q: %w", what, capability, errors.ErrUnsupported)
	}
	return nil
}

// pushDepth is how many pushes the engine keeps in flight on the
// connection: with two, the next batch is on its way while the server
// applies one, so the server does not wait for the replica between batches.
const pushDepth = 2

// PushDepth implements core.Pipeliner: each Push is a stream of its own on
// the HTTP/2 connection (the server's MaxConcurrentStreams, 64 by default,
// queues any beyond it).
func (c *Client) PushDepth() int { return pushDepth }

// BatchLimits implements core.Batcher with the server's stated limits.
func (c *Client) BatchLimits(ctx context.Context) (core.BatchLimits, error) {
	caps, err := c.capabilities(ctx)
	if err != nil {
		return core.BatchLimits{}, err
	}
	return core.BatchLimits{MaxOps: int(caps.GetMaxBatch()), MaxLimit: int(caps.GetMaxLimit())}, nil
}

// Pull implements core.Transport. A page larger than the client may
// receive is asked for again with half the rows, down to one.
func (c *Client) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	what := "pull " + req.Kind
	in, err := c.pullPB(req)
	if err != nil {
		return core.Page{}, fmt.Errorf("grpc: %s: %w", what, err)
	}
	for {
		p, err := unary(ctx, c, func(ctx context.Context, opts ...grpcgo.CallOption) (*syncv1.Page, error) {
			return c.sync.Pull(ctx, in, opts...)
		})
		if err != nil {
			if in.Limit > 1 && tooLargeAnswer(err) {
				in.Limit /= 2
				continue
			}
			return core.Page{}, c.mapErr(ctx, what, err)
		}
		page, err := pageOf(req.Kind, p)
		if err != nil {
			return core.Page{}, fmt.Errorf("grpc: %s: %w", what, err)
		}
		return page, nil
	}
}

// pullPB is req on the wire, with the client's page size when req has no
// limit; errors wrap core.ErrInvalid.
func (c *Client) pullPB(req core.PullRequest) (*syncv1.PullRequest, error) {
	if err := checkKind(req.Kind); err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit <= 0 {
		limit = c.pageSize
	}
	in := &syncv1.PullRequest{Kind: req.Kind, PageToken: req.PageToken, Limit: int32(min(limit, 1<<30))}
	if req.PageToken == "" && !req.After.IsZero() {
		if !utf8.ValidString(req.After.ID) {
			return nil, fmt.Errorf("%w: the cursor's id is not UTF-8", core.ErrInvalid)
		}
		in.After = &syncv1.Cursor{UpdatedAt: micros(req.After.UpdatedAt), Id: req.After.ID}
	}
	return in, nil
}

// pageOf reads a page a server sent for kind: every record is checked as
// recordOf checks it.
func pageOf(kind string, p *syncv1.Page) (core.Page, error) {
	page := core.Page{Records: make([]core.Record, len(p.GetRecords())), NextPageToken: p.GetNextPageToken(), Remaining: -1}
	if p.Remaining != nil {
		page.Remaining = p.GetRemaining()
	}
	for i, r := range p.GetRecords() {
		rec, err := recordOf(kind, r)
		if err != nil {
			return core.Page{}, err
		}
		page.Records[i] = rec
	}
	return page, nil
}

// lastPage reports whether page ends its walk.
func lastPage(page *core.Page) bool { return page.NextPageToken == "" || len(page.Records) == 0 }

// after moves in past page, within its walk.
func after(in *syncv1.PullRequest, page *core.Page) {
	in.PageToken, in.After = page.NextPageToken, nil
}

// PullPages implements core.PageStreamer over the PullPages stream: one
// call for the walk, each message converted and checked as Pull's answer
// is, and yielded. While yield runs nothing is read, so the server's Send
// waits on HTTP/2 flow control: the walk is never buffered beyond the
// connection's window. Timeout bounds the wait for each page (not the
// walk) when ctx has no deadline. On Unauthenticated before a stream's
// first page the token source is asked once more, with refresh; a stream
// that a token's expiry ended after some pages is opened again after the
// last page yielded, with a fresh token. A page over the client's receive
// limit is asked for with Pull (fewer rows) and the walk streams on after
// it. A server that does not list "stream-pull" in its capabilities, or
// answers Unimplemented, is pulled page by page.
func (c *Client) PullPages(ctx context.Context, req core.PullRequest, yield func(core.Page) error) error {
	what := "pull " + req.Kind
	in, err := c.pullPB(req)
	if err != nil {
		return fmt.Errorf("grpc: %s: %w", what, err)
	}
	caps, err := c.capabilities(ctx)
	if err != nil {
		return err
	}
	if c.noStream.Load() || !slices.Contains(caps.GetCapabilities(), capStreamPull) {
		return c.pullEach(ctx, req.Kind, in, yield)
	}
	w := &walk{c: c, what: what, kind: req.Kind, in: in, yield: yield}
	for {
		err := w.stream(ctx)
		var y yieldError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &y):
			return y.err
		case w.pages == 0 && status.Code(err) == codes.Unimplemented:
			c.noStream.Store(true)
			return c.pullEach(ctx, req.Kind, in, yield)
		case ctx.Err() == nil && w.in.Limit > 1 && tooLargeAnswer(err):
			// A page the client cannot receive: that one page with fewer
			// rows, then the stream again after it.
			done, err := c.pullOne(ctx, req.Kind, w.in, yield)
			if err != nil || done {
				return err
			}
			continue
		}
		if _, ok := status.FromError(err); ok || ctx.Err() != nil {
			return c.mapErr(ctx, what, err)
		}
		return err
	}
}

// pullEach walks in's pages with a Pull per page (a server without
// PullPages), yielding each.
func (c *Client) pullEach(ctx context.Context, kind string, in *syncv1.PullRequest, yield func(core.Page) error) error {
	for {
		done, err := c.pullOne(ctx, kind, in, yield)
		if err != nil || done {
			return err
		}
	}
}

// pullOne pulls and yields the page at in, moves in past it, and reports
// whether it was the walk's last.
func (c *Client) pullOne(ctx context.Context, kind string, in *syncv1.PullRequest, yield func(core.Page) error) (bool, error) {
	req := core.PullRequest{Kind: kind, PageToken: in.GetPageToken(), Limit: int(in.GetLimit())}
	if a := in.GetAfter(); a != nil {
		req.After = core.Cursor{UpdatedAt: time.UnixMicro(a.GetUpdatedAt()).UTC(), ID: a.GetId()}
	}
	page, err := c.Pull(ctx, req)
	if err != nil {
		return false, err
	}
	if err := yield(page); err != nil {
		return false, err
	}
	after(in, &page)
	return lastPage(&page), nil
}

// yieldError is the error of the caller's yield, returned as it is.
type yieldError struct{ err error }

func (e yieldError) Error() string { return e.err.Error() }

// walk is the state of one PullPages call: in is the request for the next
// page, pages the number of pages yielded.
type walk struct {
	c     *Client
	what  string
	kind  string
	in    *syncv1.PullRequest
	yield func(core.Page) error
	pages int
}

// stream reads the walk from in over PullPages streams until its last
// page: nil then, else the RPC's error (unmapped), a yieldError, or a local
// error (the token source's, an unreadable page).
func (w *walk) stream(ctx context.Context) error {
	c := w.c
	for refresh := false; ; refresh = true {
		sctx, err := c.withToken(ctx, refresh)
		if err != nil {
			return err
		}
		c.ready(ctx)
		before := w.pages
		err = w.read(ctx, sctx)
		c.afterFailure(err)
		if err == nil || status.Code(err) != codes.Unauthenticated || c.token == nil || (refresh && w.pages == before) {
			return err // a fresh token refused before any page: give up
		}
	}
}

// read reads one stream from in, yielding its pages.
func (w *walk) read(ctx, sctx context.Context) error {
	c := w.c
	sctx, cancel := context.WithCancel(sctx)
	defer cancel()
	var timer *time.Timer
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		timer = time.AfterFunc(c.timeout, cancel)
		defer timer.Stop()
	}
	s, err := c.sync.PullPages(sctx, w.in, grpcgo.MaxCallRecvMsgSize(c.maxMsg))
	for err == nil {
		var p *syncv1.Page
		if timer != nil {
			timer.Reset(c.timeout)
		}
		p, err = s.Recv()
		if timer != nil && !timer.Stop() && ctx.Err() == nil {
			return fmt.Errorf("grpc: %s: %w: no page within %v", w.what, core.ErrUnavailable, c.timeout)
		}
		if err == io.EOF {
			return fmt.Errorf("grpc: %s: %w: the stream ended before the walk's last page", w.what, core.ErrUnavailable)
		}
		if err == nil {
			err = ctx.Err() // a page that came as ctx ended is not yielded
		}
		if err != nil {
			break
		}
		page, err := pageOf(w.kind, p)
		if err != nil {
			return fmt.Errorf("grpc: %s: %w", w.what, err)
		}
		if err := w.yield(page); err != nil {
			return yieldError{err}
		}
		w.pages++
		after(w.in, &page)
		if lastPage(&page) {
			return nil
		}
	}
	return err
}

// tooLargeAnswer reports whether err is the client's own refusal of an
// answer over its receive limit.
func tooLargeAnswer(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.ResourceExhausted && len(st.Details()) == 0
}

// Get implements core.Getter.
func (c *Client) Get(ctx context.Context, kind, id string) (core.Record, error) {
	what := "get " + kind + "/" + id
	if err := checkKind(kind); err != nil {
		return core.Record{}, fmt.Errorf("grpc: %s: %w", what, err)
	}
	if err := core.CheckID(id); err != nil {
		return core.Record{}, fmt.Errorf("grpc: %s: %w", what, err)
	}
	if err := c.needs(ctx, what, "get"); err != nil {
		return core.Record{}, err
	}
	p, err := unary(ctx, c, func(ctx context.Context, opts ...grpcgo.CallOption) (*syncv1.Record, error) {
		return c.sync.Get(ctx, &syncv1.GetRequest{Kind: kind, Id: id}, opts...)
	})
	if err != nil {
		return core.Record{}, c.mapErr(ctx, what, err)
	}
	rec, err := recordOf(kind, p)
	if err != nil {
		return core.Record{}, fmt.Errorf("grpc: %s: %w", what, err)
	}
	return rec, nil
}

// checkOp refuses an op that cannot be sent (the server would refuse the
// whole request): it is the op's own permanent rejection, answered without
// a round trip.
func checkOp(op *core.Op) (core.PushResult, bool) {
	bad := func(err error) (core.PushResult, bool) {
		return core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Permanent: true, Reason: err.Error()}, false
	}
	if err := wire.CheckOpID(op.OpID); err != nil {
		return bad(err)
	}
	if err := checkKind(op.Kind); err != nil {
		return bad(err)
	}
	if err := core.CheckID(op.ID); err != nil {
		return bad(err)
	}
	switch op.Type {
	case core.OpUpsert:
		if !isObject(op.Payload) {
			return bad(fmt.Errorf("%w: payload is not a JSON object", core.ErrInvalid))
		}
	case core.OpDelete:
	default:
		return bad(fmt.Errorf("%w: unknown op type %q", core.ErrInvalid, op.Type))
	}
	for _, t := range []time.Time{op.BaseUpdatedAt, op.EditedAt} {
		if us := micros(t); us != 0 && (us < minMicros || us > maxMicros) {
			return bad(fmt.Errorf("%w: a time outside the years 1 to 9999", core.ErrInvalid))
		}
	}
	return core.PushResult{}, true
}

type recKey struct{ kind, id string }

// Push implements core.Transport. The ops go in requests of at most the
// server's max_batch ops and max_message bytes. Once an op for a record is
// not applied, the later ops for that record are answered Skipped. A
// failure that is not an op's own (network, auth, 429, 5xx) answers the
// remaining ops StatusRetry, or fails Push when no op was answered.
func (c *Client) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	caps, err := c.capabilities(ctx)
	if err != nil {
		return nil, err
	}
	maxOps := max(1, int(caps.GetMaxBatch()))
	maxBytes := max(int(caps.GetMaxMessage())-messageMargin, 1)
	results := make([]core.PushResult, len(ops))
	blocked := map[recKey]struct{}{}
	var fail error
	idx := make([]int, 0, min(maxOps, len(ops)))
	batch := make([]*syncv1.Op, 0, cap(idx))
	for start := 0; start < len(ops) && fail == nil; {
		idx, batch = idx[:0], batch[:0]
		size := 0
		i := start
		for ; i < len(ops) && len(idx) < maxOps; i++ {
			op := &ops[i]
			if _, ok := blocked[recKey{op.Kind, op.ID}]; ok {
				results[i] = core.PushResult{OpID: op.OpID, Status: core.StatusSkipped, Reason: "skipped"}
				continue
			}
			if res, ok := checkOp(op); !ok {
				results[i] = res
				blocked[recKey{op.Kind, op.ID}] = struct{}{}
				continue
			}
			p := opPB(op)
			n := proto.Size(p) + 8
			if len(idx) > 0 && size+n > maxBytes {
				break
			}
			size += n
			idx, batch = append(idx, i), append(batch, p)
		}
		start = i
		if len(idx) == 0 {
			continue
		}
		fail = c.pushBatch(ctx, ops, idx, batch, results, blocked)
	}
	return wire.FinishPush(ops, results, fail, 0)
}

// pushBatch sends one PushRequest and settles its ops' results.
func (c *Client) pushBatch(ctx context.Context, ops []core.Op, idx []int, batch []*syncv1.Op,
	results []core.PushResult, blocked map[recKey]struct{}) error {
	resp, err := unary(ctx, c, func(ctx context.Context, opts ...grpcgo.CallOption) (*syncv1.PushResponse, error) {
		return c.sync.Push(ctx, &syncv1.PushRequest{Ops: batch}, opts...)
	})
	if err != nil {
		return c.mapErr(ctx, "push", err)
	}
	got := resp.GetResults()
	for n, i := range idx {
		op := &ops[i]
		var res core.PushResult
		if n >= len(got) || got[n].GetOpId() != op.OpID {
			// Left out of the answer: unknown whether it was processed;
			// the engine re-sends it with the same op id.
			res = core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: "missing from the push answer"}
		} else {
			res, _ = resultOf(op, got[n])
		}
		results[i] = res
		if res.Status != core.StatusApplied {
			blocked[recKey{op.Kind, op.ID}] = struct{}{}
		}
	}
	return nil
}

// Subscribe implements core.Subscriber over the Subscribe stream. It
// returns once the server says the subscription is in force. A broken
// stream is re-opened with backoff, and a Notice with Gap set follows each
// reconnect. The channel is closed when ctx is done.
func (c *Client) Subscribe(ctx context.Context, kinds []string) (<-chan core.Notice, error) {
	for _, k := range kinds {
		if err := checkKind(k); err != nil {
			return nil, fmt.Errorf("grpc: subscribe: %w", err)
		}
	}
	if err := c.needs(ctx, "subscribe", "events"); err != nil {
		return nil, err
	}
	stream, cancel, err := c.openStream(ctx, kinds)
	if err != nil {
		return nil, err
	}
	ch := make(chan core.Notice, 64)
	go c.stream(ctx, kinds, stream, cancel, ch)
	return ch, nil
}

type noticeStream = grpcgo.ServerStreamingClient[syncv1.Notice]

// openStream opens a Subscribe stream and waits for the server's header
// saying it is in force (Timeout bounds that wait only).
func (c *Client) openStream(ctx context.Context, kinds []string) (noticeStream, context.CancelFunc, error) {
	for attempt := 0; ; attempt++ {
		sctx, err := c.withToken(ctx, attempt > 0)
		if err != nil {
			return nil, nil, err
		}
		c.ready(ctx)
		sctx, cancel := context.WithCancel(sctx)
		var timer *time.Timer
		if c.timeout > 0 {
			timer = time.AfterFunc(c.timeout, cancel)
		}
		stream, err := c.sync.Subscribe(sctx, &syncv1.SubscribeRequest{Kinds: kinds})
		var md metadata.MD
		if err == nil {
			md, err = stream.Header()
			if err == nil && len(md.Get(SubscribedHeader)) == 0 {
				// No header: the server answered with a status only.
				_, err = stream.Recv()
				if err == nil {
					err = status.Error(codes.Internal, "the stream sent a notice before subscribing")
				}
			}
		}
		if timer != nil && !timer.Stop() && err == nil {
			err = status.Error(codes.DeadlineExceeded, "no subscription within the timeout")
		}
		if err == nil {
			return stream, cancel, nil
		}
		cancel()
		c.afterFailure(err)
		if attempt == 0 && c.token != nil && status.Code(err) == codes.Unauthenticated {
			continue
		}
		if ctx.Err() == nil && status.Code(err) == codes.Canceled {
			return nil, nil, fmt.Errorf("grpc: subscribe: %w: no subscription within %v", core.ErrUnavailable, c.timeout)
		}
		return nil, nil, c.mapErr(ctx, "subscribe", err)
	}
}

// stream delivers notices until ctx is done, re-opening a broken stream.
func (c *Client) stream(ctx context.Context, kinds []string, s noticeStream, cancel context.CancelFunc, ch chan<- core.Notice) {
	defer close(ch)
	for {
		err := c.readNotices(ctx, s, ch)
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.log.WarnContext(ctx, "grpc: notice stream broken; reconnecting", "err", err)
		for attempt := 0; ; attempt++ {
			t := time.NewTimer(c.backoff.Delay(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			s, cancel, err = c.openStream(ctx, kinds)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			c.log.WarnContext(ctx, "grpc: re-subscribing failed", "err", err)
		}
		select {
		case ch <- core.Notice{Gap: true}:
		case <-ctx.Done():
			cancel()
			return
		}
	}
}

// readNotices delivers the notices of s until it ends.
func (c *Client) readNotices(ctx context.Context, s noticeStream, ch chan<- core.Notice) error {
	for {
		p, err := s.Recv()
		if err != nil {
			return err
		}
		n := core.Notice{Kind: p.GetKind(), ID: p.GetId()}
		if n.UpdatedAt, err = timeOf("updated_at", p.GetUpdatedAt()); err != nil || n.Kind == "" {
			c.log.WarnContext(ctx, "grpc: ignoring an unreadable notice", "kind", n.Kind, "err", err)
			continue
		}
		select {
		case ch <- n:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
