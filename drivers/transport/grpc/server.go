package grpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	grpcgo "google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	"github.com/offsync/offsync/core"
	syncv1 "github.com/offsync/offsync/drivers/transport/grpc/proto/offsync/sync/v1"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
	"github.com/offsync/offsync/tracing"
)

// SubscribedHeader is the response header a Subscribe stream sends once the
// subscription is in force.
const SubscribedHeader = "offsync-subscribed"

// Defaults of the server half when the authority is not a core.Batcher.
const (
	defaultMaxBatch = 1000
	defaultMaxLimit = 1000
)

// Server is the gRPC server half: the offsync.sync.v1.Sync service over any
// core.Transport, and the standard grpc.health.v1 service beside it, on a
// listener of its own. It implements server.ListenerTransport.
type Server struct {
	syncv1.UnimplementedSyncServer

	t        core.Transport
	getter   core.Getter
	streamer core.PageStreamer
	sub      core.Subscriber
	batcher  core.Batcher
	limits   server.Limits
	served   func() map[string]string
	log      *slog.Logger
	codec    *lenientCodec
	gs       *grpcgo.Server
	health   *health.Server

	quit     chan struct{} // closed by Shutdown: streams end with Unavailable
	quitOnce sync.Once
	stopped  chan struct{} // closed when the grpc server has stopped
	stopOnce sync.Once
}

var _ server.ListenerTransport = (*Server)(nil)

// openServer is the opener registered as the "grpc" server half.
func openServer(_ context.Context, t core.Transport, cfg server.TransportConfig) (server.TransportServer, error) {
	for k := range cfg.Options {
		return nil, fmt.Errorf("grpc: %w: unknown option %q (the grpc server half has none; set addr, limits and tls)", core.ErrInvalid, k)
	}
	return NewServer(t, cfg), nil
}

// NewServer returns the server half over t, configured by cfg (Path and
// Options are not used; zero Limits take server's defaults). Serve it on a
// listener; Shutdown stops it.
func NewServer(t core.Transport, cfg server.TransportConfig) *Server {
	l := cfg.Limits.WithDefaults()
	s := &Server{t: t, limits: l, served: cfg.Served, log: cfg.Logger,
		codec: newLenientCodec(), quit: make(chan struct{}), stopped: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.getter, _ = t.(core.Getter)
	s.streamer, _ = t.(core.PageStreamer)
	s.sub, _ = t.(core.Subscriber)
	s.batcher, _ = t.(core.Batcher)
	opts := []grpcgo.ServerOption{
		grpcgo.ForceServerCodecV2(s.codec),
		grpcgo.MaxRecvMsgSize(int(l.MaxMessage)),
		grpcgo.MaxConcurrentStreams(uint32(l.MaxInFlight)),
		// The server pings a connection idle for a heartbeat and drops it
		// when the ping is not answered within another: a peer silent for
		// two periods is gone. A client may ping every half heartbeat,
		// even with no call open (an idle Subscribe stream must live).
		grpcgo.KeepaliveParams(keepalive.ServerParameters{Time: l.Heartbeat, Timeout: l.Heartbeat}),
		grpcgo.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime(l.Heartbeat), PermitWithoutStream: true}),
		grpcgo.ChainUnaryInterceptor(s.unaryAuth),
		grpcgo.ChainStreamInterceptor(s.streamAuth),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpcgo.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.gs = grpcgo.NewServer(opts...)
	syncv1.RegisterSyncServer(s.gs, s)
	s.health = health.NewServer()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(syncv1.Sync_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.gs, s.health)
	// Server reflection, for tools such as grpcurl and grpcui.
	reflection.Register(s.gs)
	return s
}

// keepaliveMinTime is how often a client may ping: every half heartbeat,
// and never less often than every 10 s, grpc-go's floor for client pings,
// so that no grpc-go client with keepalive on is sent away.
func keepaliveMinTime(heartbeat time.Duration) time.Duration { return min(heartbeat/2, 10*time.Second) }

// Serve serves on ln until Shutdown; it returns nil then.
func (s *Server) Serve(ln net.Listener) error {
	err := s.gs.Serve(ln)
	if errors.Is(err, grpcgo.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown ends every Subscribe stream with Unavailable ("going away"; the
// client re-subscribes elsewhere or later and pulls after the gap), marks
// the health service NOT_SERVING, and stops gracefully: calls in flight
// finish. When ctx ends first, the remaining calls are cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.quitOnce.Do(func() {
		close(s.quit)
		s.health.Shutdown()
		go func() {
			s.gs.GracefulStop()
			s.stopOnce.Do(func() { close(s.stopped) })
		}()
	})
	select {
	case <-s.stopped:
		return nil
	case <-ctx.Done():
		s.gs.Stop()
		<-s.stopped
		return ctx.Err()
	}
}

// public reports whether a method needs no token: Capabilities (as REST's
// /health), the health service and server reflection (the schema is public:
// it is sync.proto).
func public(method string) bool {
	return method == syncv1.Sync_Capabilities_FullMethodName || strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

// authenticate puts the caller's principal in ctx: metadata authorization,
// exactly one `Bearer <token>` value (none: the authority decides whether
// anonymous callers are welcome), through server.Authenticate.
func (s *Server) authenticate(ctx context.Context) (context.Context, error) {
	ctx = server.WithTransport(ctx, "grpc")
	md, _ := metadata.FromIncomingContext(ctx)
	if tp := md.Get(tracing.Field); len(tp) == 1 {
		ctx = tracing.Extract(ctx, tp[0])
	}
	tok, err := server.ParseBearer(md.Get("authorization"))
	if err != nil {
		return ctx, statusErr(err)
	}
	actx, err := server.Authenticate(ctx, s.t, tok)
	if err != nil {
		if errors.Is(err, core.ErrUnavailable) {
			return ctx, s.fail(ctx, "authenticate", err)
		}
		return ctx, statusWithCode(http.StatusUnauthorized, wire.CodeUnauthorized, "%v: the token was refused", core.ErrUnauthorized)
	}
	return actx, nil
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpcgo.UnaryServerInfo, handler grpcgo.UnaryHandler) (any, error) {
	if err := s.codec.take(req); err != nil {
		return nil, badMessage(err)
	}
	if !public(info.FullMethod) {
		var err error
		if ctx, err = s.authenticate(ctx); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

// badMessage is the answer to a request the codec could not decode.
// protobuf-go puts a random no-break space in its messages (so that no
// one matches them); the answer's message is made stable.
func badMessage(err error) error {
	msg := strings.ReplaceAll(err.Error(), "\u00a0", " ")
	return statusWithCode(http.StatusBadRequest, wire.CodeBadRequest, "%v: the request message cannot be decoded: %s", core.ErrInvalid, msg)
}

// authStream is a server stream whose context carries the principal and
// whose received messages are checked for decoding errors.
type authStream struct {
	grpcgo.ServerStream
	ctx   context.Context
	codec *lenientCodec
}

func (a *authStream) Context() context.Context { return a.ctx }

func (a *authStream) RecvMsg(m any) error {
	if err := a.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err := a.codec.take(m); err != nil {
		return badMessage(err)
	}
	return nil
}

func (s *Server) streamAuth(srv any, ss grpcgo.ServerStream, info *grpcgo.StreamServerInfo, handler grpcgo.StreamHandler) error {
	ctx := ss.Context()
	if !public(info.FullMethod) {
		var err error
		if ctx, err = s.authenticate(ctx); err != nil {
			return err
		}
	}
	// A stream ends Unauthenticated when the caller's token expires
	// (server.StreamContext); the client asks for a new token.
	sctx, cancel := server.StreamContext(ctx)
	defer cancel()
	err := handler(srv, &authStream{ServerStream: ss, ctx: sctx, codec: s.codec})
	if server.Expired(sctx) {
		return statusErr(server.ErrTokenExpired)
	}
	return err
}

// fail logs an error worth logging and returns its status.
func (s *Server) fail(ctx context.Context, what string, err error) error {
	st, _ := wire.ErrorStatus(err)
	switch {
	case st >= 500 && st != http.StatusServiceUnavailable:
		s.log.ErrorContext(ctx, "grpc: internal error", "call", what, "err", err)
	case st >= 500:
		s.log.WarnContext(ctx, "grpc: unavailable", "call", what, "err", err)
	}
	return statusErr(err)
}

// limitsOf returns the authority's batch limits, or the defaults.
func (s *Server) limitsOf(ctx context.Context) core.BatchLimits {
	bl := core.BatchLimits{MaxOps: defaultMaxBatch, MaxLimit: defaultMaxLimit}
	if s.batcher != nil {
		if got, err := s.batcher.BatchLimits(ctx); err == nil {
			if got.MaxOps > 0 {
				bl.MaxOps = got.MaxOps
			}
			if got.MaxLimit > 0 {
				bl.MaxLimit = got.MaxLimit
			}
		}
	}
	return bl
}

// Capabilities implements syncv1.SyncServer: the limits and features, as
// REST's /health states them.
func (s *Server) Capabilities(ctx context.Context, _ *syncv1.CapabilitiesRequest) (*syncv1.CapabilitiesResponse, error) {
	bl := s.limitsOf(ctx)
	caps := []string{"batch"}
	if s.sub != nil {
		caps = append(caps, "events")
	}
	if s.getter != nil {
		caps = append(caps, "get")
	}
	if s.streamer != nil {
		caps = append(caps, capStreamPull)
	}
	resp := &syncv1.CapabilitiesResponse{Status: "ok", Protocol: 1, Capabilities: caps,
		MaxBatch: int32(bl.MaxOps), MaxLimit: int32(bl.MaxLimit), MaxMessage: s.limits.MaxMessage,
		HeartbeatMs:        s.limits.Heartbeat.Milliseconds(),
		KeepaliveMinTimeMs: keepaliveMinTime(s.limits.Heartbeat).Milliseconds()}
	if s.served != nil {
		resp.Transports = s.served()
	}
	return resp, nil
}

// Pull implements syncv1.SyncServer. A page whose message would exceed the
// message limit is asked of the authority again with fewer rows.
func (s *Server) Pull(ctx context.Context, in *syncv1.PullRequest) (*syncv1.Page, error) {
	req, err := pullOf(in)
	if err != nil {
		return nil, statusErr(err)
	}
	out, _, err := s.pullFitting(ctx, req, 0)
	return out, err
}

// pullFitting asks the authority for the page at req and, while its
// message would exceed the message limit, for the same page with fewer
// rows; tries counts the asks already made for it. It returns the page
// and its message.
func (s *Server) pullFitting(ctx context.Context, req core.PullRequest, tries int) (*syncv1.Page, core.Page, error) {
	for {
		page, err := s.t.Pull(ctx, req)
		if err != nil {
			return nil, core.Page{}, s.fail(ctx, "pull "+req.Kind, err)
		}
		out, size := pagePB(&page)
		if size <= s.limits.MaxMessage {
			return out, page, nil
		}
		if req, err = s.fewerRows(req, &page, size, tries); err != nil {
			return nil, core.Page{}, err
		}
		tries++
	}
}

// fewerRows is req asking for fewer rows than page, whose message has size
// bytes, over the message limit: in proportion, with a margin (the sizes
// vary). A lone record over the limit, or an authority that does not
// honour smaller limits, is ResourceExhausted (413).
func (s *Server) fewerRows(req core.PullRequest, page *core.Page, size int64, tries int) (core.PullRequest, error) {
	n := len(page.Records)
	if n <= 1 {
		return req, statusWithCode(http.StatusRequestEntityTooLarge, wire.CodeTooLarge,
			"%v: record %s/%s does not fit in a message of %d bytes", core.ErrTooLarge, req.Kind, page.Records[0].ID, s.limits.MaxMessage)
	}
	if tries >= 16 || (req.Limit > 0 && n > req.Limit) {
		// The authority does not honour smaller limits.
		return req, statusWithCode(http.StatusRequestEntityTooLarge, wire.CodeTooLarge,
			"%v: a page of %d bytes is over the message limit of %d", core.ErrTooLarge, size, s.limits.MaxMessage)
	}
	req.Limit = max(1, min(n-1, int(int64(n)*s.limits.MaxMessage/size*9/10)))
	return req, nil
}

// pagePB is page on the wire, and the size of its message.
func pagePB(page *core.Page) (*syncv1.Page, int64) {
	out := &syncv1.Page{Records: make([]*syncv1.Record, len(page.Records)), NextPageToken: page.NextPageToken}
	for i := range page.Records {
		out.Records[i] = recordPB(&page.Records[i])
	}
	if page.Remaining >= 0 {
		r := page.Remaining
		out.Remaining = &r
	}
	return out, int64(proto.Size(out))
}

// sendError is a failure of the stream itself (the client went away): it
// ends the call as it is, not as an error of the authority.
type sendError struct{ err error }

func (e sendError) Error() string { return e.err.Error() }

// errOverMessage stops the authority's walk at a page too large for one
// message.
var errOverMessage = errors.New("grpc: the page is over the message limit")

// PullPages implements syncv1.SyncServer over the authority's own walk
// (core.PageStreamer; server.Service.PullPages is the one server loop):
// each page it yields is sent as one message, and Send, which blocks while
// the client's HTTP/2 window is full, is what holds the authority back. The
// caller was authenticated as for Pull and the stream runs under
// server.StreamContext (streamAuth): the token's expiry ends it
// Unauthenticated. Errors are Pull's. A page over the message limit is
// served as Pull serves it (fewer rows) and the walk goes on after it.
func (s *Server) PullPages(in *syncv1.PullRequest, stream grpcgo.ServerStreamingServer[syncv1.Page]) error {
	if s.streamer == nil {
		return statusWithCode(http.StatusNotImplemented, wire.CodeNotImplemented,
			"this authority does not stream a walk's pages: pull page by page")
	}
	req, err := pullOf(in)
	if err != nil {
		return statusErr(err)
	}
	ctx := stream.Context()
	for {
		var over *core.Page
		var overSize int64
		err := s.streamer.PullPages(ctx, req, func(page core.Page) error {
			if err := ctx.Err(); err != nil {
				return err // gone, or the token expired while the page was read
			}
			out, size := pagePB(&page)
			if size > s.limits.MaxMessage {
				over, overSize = &page, size
				return errOverMessage
			}
			if err := stream.Send(out); err != nil {
				return sendError{err}
			}
			req = nextOf(req, &page)
			return nil
		})
		if over == nil {
			return s.endStream(ctx, "pull "+req.Kind, err)
		}
		// req is the position of the page too large for a message.
		if req, err = s.fewerRows(req, over, overSize, 0); err != nil {
			return err
		}
		out, page, err := s.pullFitting(ctx, req, 1)
		if err != nil {
			return err
		}
		if err := stream.Send(out); err != nil {
			return err
		}
		if page.NextPageToken == "" || len(page.Records) == 0 {
			return nil
		}
		req = nextOf(req, &page)
		req.Limit = int(in.GetLimit()) // the walk goes on with the pages asked for
	}
}

// nextOf is the request for the page after page, within the walk of req.
func nextOf(req core.PullRequest, page *core.Page) core.PullRequest {
	if len(page.Records) > 0 {
		last := &page.Records[len(page.Records)-1]
		req.After = core.Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
	}
	req.PageToken = page.NextPageToken
	return req
}

// endStream is the status a stream of the authority's ends with: OK, the
// stream's own failure as it is, a client that went away, or the
// authority's error as Pull answers it.
func (s *Server) endStream(ctx context.Context, what string, err error) error {
	var se sendError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return se.err
	case ctx.Err() != nil:
		// Gone, or its token expired (streamAuth answers that).
		return statusErr(fmt.Errorf("%w: the client went away", ctx.Err()))
	}
	return s.fail(ctx, what, err)
}

// Get implements syncv1.SyncServer.
func (s *Server) Get(ctx context.Context, in *syncv1.GetRequest) (*syncv1.Record, error) {
	if s.getter == nil {
		return nil, statusWithCode(http.StatusNotImplemented, wire.CodeNotImplemented, "this authority cannot fetch one record")
	}
	if err := checkKind(in.GetKind()); err != nil {
		return nil, statusErr(fmt.Errorf("kind: %w", err))
	}
	if err := core.CheckID(in.GetId()); err != nil {
		return nil, statusErr(fmt.Errorf("id: %w", err))
	}
	rec, err := s.getter.Get(ctx, in.GetKind(), in.GetId())
	if err != nil {
		return nil, s.fail(ctx, "get "+in.GetKind(), err)
	}
	return recordPB(&rec), nil
}

// Push implements syncv1.SyncServer: one result per op, in order; a
// request that is malformed as a whole is InvalidArgument (or
// ResourceExhausted for too many ops) and nothing of it is written.
func (s *Server) Push(ctx context.Context, in *syncv1.PushRequest) (*syncv1.PushResponse, error) {
	ops, err := opsOf(in.GetOps(), s.limitsOf(ctx).MaxOps)
	if err != nil {
		return nil, statusErr(err)
	}
	// A push that reached the server runs to its end even when the client
	// goes away meanwhile (a cut connection, a cancelled call): its ops are
	// then applied once and the client's re-send with the same op ids gets
	// the kept answers, instead of racing a rollback. The call's deadline
	// still bounds it.
	pctx := context.WithoutCancel(ctx)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		pctx, cancel = context.WithDeadline(pctx, d)
		defer cancel()
	}
	res, err := s.t.Push(pctx, ops)
	if len(ops) == 1 && errors.Is(err, core.ErrUnknownKind) {
		// An authority refuses a lone op of an unknown kind as a whole
		// (server.Service does); here it is the op's own permanent
		// rejection, as in a batch of several ops.
		res, err = []core.PushResult{{OpID: ops[0].OpID, Status: core.StatusRejected, Permanent: true, Reason: err.Error()}}, nil
	}
	if err == nil && len(res) != len(ops) {
		err = fmt.Errorf("grpc: the authority answered %d results for %d ops", len(res), len(ops))
	}
	if err != nil {
		return nil, s.fail(ctx, "push", err)
	}
	out := &syncv1.PushResponse{Results: make([]*syncv1.PushResult, len(res))}
	for i := range res {
		out.Results[i] = resultPB(&res[i])
	}
	return out, nil
}

// Subscribe implements syncv1.SyncServer over the authority's own
// subscription (its one fan-out). The header SubscribedHeader is sent once
// the subscription is in force. The stream ends with Unavailable when the
// server shuts down or the authority ends the subscription (a subscriber
// that fell behind): the client re-subscribes and pulls after the gap.
func (s *Server) Subscribe(in *syncv1.SubscribeRequest, stream grpcgo.ServerStreamingServer[syncv1.Notice]) error {
	if s.sub == nil {
		return statusWithCode(http.StatusNotImplemented, wire.CodeNotImplemented, "this authority does not stream notices")
	}
	kinds := in.GetKinds()
	seen := make(map[string]bool, len(kinds))
	for i, k := range kinds {
		if err := checkKind(k); err != nil {
			return statusErr(fmt.Errorf("kinds[%d]: %w", i, err))
		}
		seen[k] = true
	}
	kinds = make([]string, 0, len(seen))
	for k := range seen {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ch, err := s.sub.Subscribe(ctx, kinds)
	if err != nil {
		return s.fail(ctx, "subscribe", err)
	}
	if err := stream.SendHeader(metadata.Pairs(SubscribedHeader, "1")); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return statusErr(fmt.Errorf("%w: the client went away", ctx.Err()))
		case <-s.quit:
			return statusWithCode(http.StatusServiceUnavailable, wire.CodeUnavailable, "%v: the server is shutting down", core.ErrUnavailable)
		case n, ok := <-ch:
			if !ok {
				return statusWithCode(http.StatusServiceUnavailable, wire.CodeUnavailable, "%v: the subscription ended; subscribe again and pull", core.ErrUnavailable)
			}
			if err := stream.Send(noticePB(&n)); err != nil {
				return err
			}
		}
	}
}
