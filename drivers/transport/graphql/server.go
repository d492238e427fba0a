package graphql

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/graphql/internal/gqlserver"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
	"github.com/offsync/offsync/tracing"
)

// Schema is the GraphQL schema of the sync contract, as served at
// GET /graphql/schema.graphql.
//
//go:embed schema.graphql
var Schema string

// Defaults of the server half's options.
const (
	DefaultMaxDepth      = 15  // deep enough for the standard introspection query
	DefaultMaxComplexity = 500 // a pull, a push or a health query costs under 20
	defaultPageSize      = 500 // a pull without a limit, as REST
)

// ServerOptions are the GraphQL half's own settings (the "options" of its
// config block); the limits every wire form shares come from
// server.TransportConfig.Limits.
type ServerOptions struct {
	// Introspection answers __schema and __type queries. Off by default: the
	// schema is published at GET /graphql/schema.graphql.
	Introspection bool
	// MaxDepth bounds the nesting of a query's selections (fragments
	// included); default DefaultMaxDepth.
	MaxDepth int
	// MaxComplexity bounds gqlgen's complexity of an operation (one per
	// field); default DefaultMaxComplexity.
	MaxComplexity int
	// Origins are the host patterns of browser pages allowed to open the
	// subscription socket from another origin (coder/websocket's
	// OriginPatterns); the same origin is always allowed.
	Origins []string
}

// optionKeys are the keys the half accepts in TransportConfig.Options.
const optionKeys = "introspection, max_depth, max_complexity, origins"

// parseOptions reads a config block's options, refusing unknown keys.
func parseOptions(m map[string]any) (ServerOptions, error) {
	var o ServerOptions
	for k, v := range m {
		switch k {
		case "introspection":
			b, ok := v.(bool)
			if !ok {
				return o, fmt.Errorf("%w: option introspection must be true or false, got %T", core.ErrInvalid, v)
			}
			o.Introspection = b
		case "max_depth", "max_complexity":
			n, ok := intOption(v)
			if !ok || n <= 0 {
				return o, fmt.Errorf("%w: option %s must be a positive integer, got %v", core.ErrInvalid, k, v)
			}
			if k == "max_depth" {
				o.MaxDepth = n
			} else {
				o.MaxComplexity = n
			}
		case "origins":
			list, ok := stringsOption(v)
			if !ok {
				return o, fmt.Errorf("%w: option origins must be a list of host patterns, got %T", core.ErrInvalid, v)
			}
			o.Origins = list
		default:
			return o, fmt.Errorf("%w: unknown option %q of the graphql transport (known: %s)", core.ErrInvalid, k, optionKeys)
		}
	}
	return o, nil
}

func intOption(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case uint64:
		return int(x), true
	case float64:
		return int(x), float64(int(x)) == x
	}
	return 0, false
}

func stringsOption(v any) ([]string, bool) {
	switch x := v.(type) {
	case []string:
		return x, true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

// Server is the GraphQL server half: POST for queries and mutations,
// graphql-transport-ws for the subscription, GET /schema.graphql for the
// schema, over any core.Transport (normally a *server.Service). It is a
// server.HTTPTransport: it sees paths with its mount path stripped.
type Server struct {
	t       core.Transport
	getter  core.Getter
	sub     core.Subscriber
	batcher core.Batcher
	cfg     server.TransportConfig
	lim     server.Limits
	opts    ServerOptions
	log     *slog.Logger
	gql     *handler.Server

	shapes shapes // the fast path's plans per query text (fast.go)
	slow   bool   // tests: serve every operation through the executor

	base    context.Context // cancelled by Shutdown: ends every socket
	cancel  context.CancelFunc
	closing atomic.Bool
	wg      sync.WaitGroup // requests and sockets in flight
}

var _ server.HTTPTransport = (*Server)(nil)

// openServer is the registered opener of the "graphql" half.
func openServer(_ context.Context, t core.Transport, cfg server.TransportConfig) (server.TransportServer, error) {
	o, err := parseOptions(cfg.Options)
	if err != nil {
		return nil, err
	}
	return NewServer(t, cfg, &o), nil
}

// NewServer returns the GraphQL half over t. cfg's zero limits take the
// shared defaults; opts may be nil. server.OpenServer(ctx, "graphql", t, cfg)
// is the usual way in (it reads opts from cfg.Options).
func NewServer(t core.Transport, cfg server.TransportConfig, opts *ServerOptions) *Server {
	var o ServerOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxComplexity <= 0 {
		o.MaxComplexity = DefaultMaxComplexity
	}
	s := &Server{t: t, cfg: cfg, lim: cfg.Limits.WithDefaults(), opts: o, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.getter, _ = t.(core.Getter)
	s.sub, _ = t.(core.Subscriber)
	s.batcher, _ = t.(core.Batcher)
	s.base, s.cancel = context.WithCancel(context.Background())

	es := gqlserver.NewExecutableSchema(gqlserver.Config{Resolvers: &resolver{s}})
	g := handler.New(es)
	g.AddTransport(postTransport{s})
	readLimit := s.lim.MaxMessage
	g.AddTransport(transport.Websocket{
		Implementation: wsImplementation{s: s, accept: websocket.AcceptOptions{OriginPatterns: o.Origins}},
		InitFunc:       s.initSocket,
		InitTimeout:    s.lim.AuthTimeout,
		// The server pings every heartbeat and drops a peer that has not
		// answered within two (our client and graphql-ws answer pings).
		PingPongInterval: s.lim.Heartbeat,
		PayloadReadLimit: &readLimit,
		ErrorFunc: func(ctx context.Context, err error) {
			s.log.DebugContext(ctx, "graphql: socket", "err", err)
		},
	})
	g.SetQueryCache(newQueryCache(256))
	if o.Introspection {
		g.Use(extension.Introspection{})
	}
	g.Use(depthLimit{max: o.MaxDepth})
	g.Use(extension.FixedComplexityLimit(o.MaxComplexity))
	g.SetErrorPresenter(s.present)
	g.SetRecoverFunc(func(ctx context.Context, p any) error {
		s.log.ErrorContext(ctx, "graphql: panic in a resolver", "panic", p)
		return fmt.Errorf("graphql: panic: %v", p)
	})
	s.gql = g
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/schema.graphql" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			writeErrors(w, http.StatusMethodNotAllowed, newError(http.StatusMethodNotAllowed, wire.CodeBadRequest, "use GET"))
			return
		}
		w.Header().Set("Content-Type", "application/graphql; charset=utf-8")
		_, _ = w.Write([]byte(Schema))
		return
	}
	if r.URL.Path != "/" {
		writeErrors(w, http.StatusNotFound, newError(http.StatusNotFound, wire.CodeNotFound,
			"no such path: POST queries and mutations to the mount point, open the subscription socket there, GET schema.graphql"))
		return
	}
	upgrade := r.Header.Get("Upgrade") != ""
	if r.Method != http.MethodPost && !(r.Method == http.MethodGet && upgrade) {
		w.Header().Set("Allow", "POST")
		writeErrors(w, http.StatusMethodNotAllowed, newError(http.StatusMethodNotAllowed, wire.CodeBadRequest,
			"POST a GraphQL request (application/json), or open a graphql-transport-ws socket"))
		return
	}
	s.wg.Add(1)
	defer s.wg.Done()
	if s.closing.Load() {
		writeErrors(w, http.StatusServiceUnavailable, errorOf(fmt.Errorf("graphql: %w: the server is shutting down", core.ErrUnavailable)))
		return
	}
	// The token is read here and authenticated once, when a field needs
	// the principal (health needs none, as REST's /health).
	st := &authState{}
	st.token, st.tokErr = server.ParseBearer(r.Header.Values("Authorization"))
	ctx := context.WithValue(tracing.ExtractHeader(r.Context(), r.Header), authKey{}, st)
	if upgrade {
		ctx = context.WithValue(ctx, socketKey{}, &socketState{})
		// A hijacked socket outlives r's context: Shutdown ends it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		stop := context.AfterFunc(s.base, cancel)
		defer stop()
	}
	s.gql.ServeHTTP(w, r.WithContext(ctx))
}

// Shutdown ends every subscription socket with 1001 (going away), refuses
// new requests and waits for those in flight until ctx is done. It does not
// close the authority.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("graphql: shutdown: %w", ctx.Err())
	}
}

// authKey carries a request's or a socket's *authState.
type authKey struct{}

// authState authenticates a caller once, on first need.
type authState struct {
	token  string
	tokErr error // a malformed Authorization value

	once sync.Once
	p    core.Principal
	has  bool
	err  error
}

// authed returns ctx with the caller's principal: server.Authenticate runs
// once per request or socket.
func (s *Server) authed(ctx context.Context) (context.Context, error) {
	ctx = server.WithTransport(ctx, "graphql")
	st, _ := ctx.Value(authKey{}).(*authState)
	if st == nil {
		return ctx, fmt.Errorf("graphql: %w: no credentials on the request", core.ErrUnauthorized)
	}
	st.once.Do(func() {
		if st.tokErr != nil {
			st.err = st.tokErr
			return
		}
		actx, err := server.Authenticate(ctx, s.t, st.token)
		if err != nil {
			st.err = err
			return
		}
		st.p, st.has = core.PrincipalFrom(actx)
	})
	if st.err != nil {
		return ctx, st.err
	}
	if st.has {
		ctx = core.WithPrincipal(ctx, st.p)
	}
	return ctx, nil
}

// present turns every error of an answer into the form's error: gqlgen's
// parse, validation and complexity errors are BAD_USER_INPUT; a resolver's
// or an argument's error is mapped with the wire table.
func (s *Server) present(ctx context.Context, err error) *gqlerror.Error {
	ge := graphql.DefaultErrorPresenter(ctx, err)
	if _, ours := ge.Extensions["status"]; ours {
		return ge
	}
	if code, _ := ge.Extensions["code"].(string); code != "" && ge.Err == nil {
		// GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED,
		// COMPLEXITY_LIMIT_EXCEEDED: the request can never succeed as sent.
		ge.Extensions = map[string]any{"code": CodeBadUserInput, "status": http.StatusBadRequest, "reason": wire.CodeBadRequest}
		return ge
	}
	cause := err
	if ge.Err != nil {
		cause = ge.Err
	}
	e := errorOf(cause)
	if e.Extensions["status"] == http.StatusInternalServerError {
		s.log.ErrorContext(ctx, "graphql: internal error", "err", cause)
	}
	e.Path, e.Locations, e.Rule = ge.Path, ge.Locations, ge.Rule
	return e
}

// initSocket authenticates a socket at connection_init: the payload's
// Authorization, else the handshake's header. A refused token closes the
// socket with 4403 ("UNAUTHENTICATED: ..."); an authority that cannot answer
// now, or a caller over its rate limit, with 1013 (try again later).
func (s *Server) initSocket(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	st, _ := ctx.Value(authKey{}).(*authState)
	if st == nil {
		st = &authState{}
	}
	if v, ok := payload["Authorization"]; ok || payload["authorization"] != nil {
		if !ok {
			v = payload["authorization"]
		}
		str, isStr := v.(string)
		fresh := &authState{}
		if !isStr {
			fresh.tokErr = fmt.Errorf("%w: the Authorization of connection_init must be a string", core.ErrUnauthorized)
		} else {
			fresh.token, fresh.tokErr = server.ParseBearer([]string{str})
		}
		st = fresh
		ctx = context.WithValue(ctx, authKey{}, st)
	}
	if tp, ok := payload[tracing.Field].(string); ok {
		ctx = tracing.Extract(ctx, tp)
	}
	actx, err := s.authed(ctx)
	if err != nil {
		status, _ := wire.ErrorStatus(err)
		code := 4403
		if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
			code = int(websocket.StatusTryAgainLater)
		}
		reason := codeOf(status) + ": " + err.Error()
		if len(reason) > 120 { // a close reason is at most 123 bytes
			reason = reason[:120]
		}
		ctx = transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, code), reason)
		return ctx, nil, err
	}
	// The socket closes with 4403 when the token expires
	// (server.StreamContext; serverConn.WriteClose picks the code).
	sctx, cancel := server.StreamContext(actx)
	context.AfterFunc(sctx, cancel)
	if ss, ok := ctx.Value(socketKey{}).(*socketState); ok {
		ss.stream.Store(&sctx)
	}
	ack := transport.InitPayload{"protocol": 1, "heartbeatMs": s.lim.Heartbeat.Milliseconds()}
	return sctx, &ack, nil
}

// socketKey carries a subscription socket's *socketState from the upgrade
// request to its connection.
type socketKey struct{}

// socketState is what the socket's connection learns at connection_init:
// the stream context that ends at the token's expiry.
type socketState struct {
	stream atomic.Pointer[context.Context]
}

// expired reports whether the socket's token expired.
func (ss *socketState) expired() bool {
	if ss == nil {
		return false
	}
	p := ss.stream.Load()
	return p != nil && server.Expired(*p)
}

// resolver is the root of the hand-written resolvers: thin calls into the
// authority.
type resolver struct{ s *Server }

func (r *resolver) Query() gqlserver.QueryResolver               { return queryResolver{r.s} }
func (r *resolver) Mutation() gqlserver.MutationResolver         { return mutationResolver{r.s} }
func (r *resolver) Subscription() gqlserver.SubscriptionResolver { return subscriptionResolver{r.s} }

type queryResolver struct{ s *Server }

// Pull serves one page. after and pageToken are exclusive; limit defaults
// to 500, must be positive, and is clamped by the authority.
func (q queryResolver) Pull(ctx context.Context, kind string, after *core.Cursor, pageToken *string, limit *int) (*gqlserver.Page, error) {
	ctx, err := q.s.authed(ctx)
	if err != nil {
		return nil, err
	}
	req := core.PullRequest{Kind: kind, Limit: defaultPageSize}
	if limit != nil {
		if *limit <= 0 {
			return nil, fmt.Errorf("%w: limit must be positive, got %d", core.ErrInvalid, *limit)
		}
		req.Limit = *limit
	}
	if pageToken != nil && *pageToken != "" {
		if after != nil {
			return nil, fmt.Errorf("%w: give after or pageToken, not both", core.ErrInvalid)
		}
		req.PageToken = *pageToken
	} else if after != nil {
		req.After = *after
	}
	page, err := q.s.t.Pull(ctx, req)
	if err != nil {
		return nil, err
	}
	out := &gqlserver.Page{Records: page.Records}
	if page.NextPageToken != "" {
		out.NextPageToken = &page.NextPageToken
	}
	if page.Remaining >= 0 {
		n := int(page.Remaining)
		out.Remaining = &n
	}
	return out, nil
}

// Record fetches one record, a tombstone too; null when missing or out of scope.
func (q queryResolver) Record(ctx context.Context, kind string, id string) (*core.Record, error) {
	ctx, err := q.s.authed(ctx)
	if err != nil {
		return nil, err
	}
	if q.s.getter == nil {
		return nil, notImplemented("record")
	}
	rec, err := q.s.getter.Get(ctx, kind, id)
	if errors.Is(err, core.ErrNotFound) && !errors.Is(err, core.ErrUnknownKind) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

// Health mirrors REST's GET /health; it needs no token.
func (q queryResolver) Health(ctx context.Context) (*gqlserver.Health, error) {
	s := q.s
	h := &gqlserver.Health{Status: "ok", Protocol: 1, Capabilities: []string{"batch"},
		MaxBatch: server.DefaultMaxBatch, MaxLimit: server.DefaultMaxLimit, MaxMessage: int(s.lim.MaxMessage),
		Transports: []gqlserver.ServedTransport{}}
	if s.sub != nil {
		h.Capabilities = append(h.Capabilities, "events")
	}
	if s.getter != nil {
		h.Capabilities = append(h.Capabilities, "get")
	}
	if s.batcher != nil {
		if bl, err := s.batcher.BatchLimits(ctx); err == nil {
			if bl.MaxOps > 0 {
				h.MaxBatch = bl.MaxOps
			}
			if bl.MaxLimit > 0 {
				h.MaxLimit = bl.MaxLimit
			}
		}
	}
	if s.cfg.Served != nil {
		served := s.cfg.Served()
		names := make([]string, 0, len(served))
		for n := range served {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			h.Transports = append(h.Transports, gqlserver.ServedTransport{Name: n, Address: served[n]})
		}
	}
	return h, nil
}

type mutationResolver struct{ s *Server }

// Push pushes a batch: one result per op, in order.
func (m mutationResolver) Push(ctx context.Context, in []gqlserver.OpInput) ([]gqlserver.PushResult, error) {
	ctx, err := m.s.authed(ctx)
	if err != nil {
		return nil, err
	}
	if len(in) == 0 {
		return []gqlserver.PushResult{}, nil
	}
	ops := make([]core.Op, len(in))
	for i := range in {
		o := &in[i]
		op := core.Op{OpID: o.OpID, Kind: o.Kind, ID: o.ID, Payload: o.Payload}
		switch o.Type {
		case gqlserver.OpTypeUpsert:
			op.Type = core.OpUpsert
		case gqlserver.OpTypeDelete:
			op.Type = core.OpDelete
		}
		if o.BaseUpdatedAt != nil {
			op.BaseUpdatedAt = *o.BaseUpdatedAt
		}
		if o.EditedAt != nil {
			op.EditedAt = *o.EditedAt
		}
		if o.Force != nil {
			op.Force = *o.Force
		}
		ops[i] = op
	}
	res, err := m.s.t.Push(ctx, ops)
	if err != nil {
		return nil, err
	}
	if len(res) != len(ops) {
		return nil, fmt.Errorf("graphql: the authority answered %d results for %d ops", len(res), len(ops))
	}
	out := make([]gqlserver.PushResult, len(res))
	for i := range res {
		out[i] = resultOf(&res[i], ops[i].OpID)
	}
	return out, nil
}

// resultOf is the wire form of one op's answer, with REST's statuses and codes.
func resultOf(pr *core.PushResult, opID string) gqlserver.PushResult {
	r := gqlserver.PushResult{OpID: opID, Status: wire.ResultStatus(pr.Status)}
	if code := wire.ResultCode(pr.Status); code != "" {
		r.Error = &code
	}
	switch pr.Status {
	case core.StatusApplied:
		r.Record = pr.Record
	case core.StatusConflict:
		r.Current = pr.Record
	case core.StatusRejected:
		if pr.Reason != "" {
			r.Message = &pr.Reason
		}
		perm := pr.Permanent
		r.Permanent = &perm
	case core.StatusRetry:
		if pr.Reason != "" {
			r.Message = &pr.Reason
		}
		if pr.RetryAfter > 0 {
			ms := int((pr.RetryAfter + time.Millisecond - 1) / time.Millisecond)
			r.RetryAfterMs = &ms
		}
	case core.StatusSkipped:
		if pr.Reason != "" {
			r.Message = &pr.Reason
		}
	}
	return r
}

type subscriptionResolver struct{ s *Server }

// Changes subscribes to the authority's notices. The first event is
// {ready: true}, sent once the authority's subscription is in force.
func (sr subscriptionResolver) Changes(ctx context.Context, kinds []string) (<-chan *gqlserver.Notice, error) {
	ctx, err := sr.s.authed(ctx)
	if err != nil {
		return nil, err
	}
	if sr.s.sub == nil {
		return nil, notImplemented("changes")
	}
	in, err := sr.s.sub.Subscribe(ctx, kinds)
	if err != nil {
		return nil, err
	}
	out := make(chan *gqlserver.Notice, 1)
	out <- &gqlserver.Notice{Ready: true}
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case n, ok := <-in:
				if !ok {
					return // the authority dropped us: complete, the client comes back with a gap
				}
				ev := &gqlserver.Notice{Gap: n.Gap}
				if n.Kind != "" {
					ev.Kind = &n.Kind
				}
				if !n.UpdatedAt.IsZero() {
					ev.UpdatedAt = &n.UpdatedAt
				}
				if n.ID != "" {
					ev.ID = &n.ID
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// depthLimit refuses an operation nested deeper than max (fragments
// followed), before anything runs.
type depthLimit struct{ max int }

var (
	_ graphql.HandlerExtension        = depthLimit{}
	_ graphql.OperationContextMutator = depthLimit{}
)

func (depthLimit) ExtensionName() string                   { return "DepthLimit" }
func (depthLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (d depthLimit) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if n := depthOf(oc.Operation.SelectionSet, d.max+1); n > d.max {
		return newError(http.StatusBadRequest, wire.CodeBadRequest,
			fmt.Sprintf("the operation is nested more than %d levels deep", d.max))
	}
	return nil
}

// depthOf is the nesting depth of set, counted up to stop.
func depthOf(set ast.SelectionSet, stop int) int {
	if len(set) == 0 || stop <= 0 {
		return 0
	}
	deepest := 0
	for _, sel := range set {
		var d int
		switch x := sel.(type) {
		case *ast.Field:
			d = 1 + depthOf(x.SelectionSet, stop-1)
		case *ast.InlineFragment:
			d = depthOf(x.SelectionSet, stop)
		case *ast.FragmentSpread:
			if x.Definition != nil {
				d = depthOf(x.Definition.SelectionSet, stop)
			}
		}
		deepest = max(deepest, d)
		if deepest >= stop {
			return deepest
		}
	}
	return deepest
}

// writeErrors answers a request refused before it ran: {"errors":[...]}.
func writeErrors(w http.ResponseWriter, status int, errs ...*gqlerror.Error) {
	b := appendErrors(make([]byte, 0, 256), errs)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func appendErrors(b []byte, errs gqlerror.List) []byte {
	js, err := json.Marshal(errs)
	if err != nil {
		js = []byte(`[{"message":"internal error"}]`)
	}
	b = append(b, `{"errors":`...)
	b = append(b, js...)
	return append(b, '}')
}
