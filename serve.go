package offsync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/metrics"
	"github.com/offsync/offsync/server"
	"github.com/offsync/offsync/server/ui"
	"github.com/offsync/offsync/tracing"
)

// uiPath is where the dashboard is mounted on the HTTP listener.
const uiPath = "/ui"

// metricsPath is where the Prometheus metrics are mounted on it.
const metricsPath = "/metrics"

// ServeOptions qualify ServeWith. The zero value (or nil) is usable.
type ServeOptions struct {
	// Logger receives the server's logs; slog.Default() when nil.
	Logger *slog.Logger
	// Ready, when set, is called once every listener is bound, with each
	// served wire form and where it is: "rest": "http://127.0.0.1:8080/",
	// "websocket": "ws://127.0.0.1:8080/ws", "grpc": "grpc://127.0.0.1:8081".
	Ready func(endpoints map[string]string)
	// Tracer receives the authority's spans (server.Options.Tracer); when
	// nil, tracing.New(nil): the global OpenTelemetry provider, which costs
	// nothing until the program sets one (otel.SetTracerProvider).
	Tracer core.Tracer
}

// Serve runs the reference authority of a server config; see ServeWith.
func Serve(ctx context.Context, cfg *config.Server) error { return ServeWith(ctx, cfg, nil) }

// ServeWith runs the reference authority of a server config until ctx is
// done: the store it names, the authority (server.Service) over it, and
// every wire form under server.transports — each a server half registered
// by name (server.RegisterTransport), REST, WebSocket and GraphQL on the
// shared HTTP listener, gRPC on its own — or, when transports is absent,
// every half registered in the binary at its default place. Every half is
// opened (its options checked) before any address is bound.
//
// The listeners have read, write, idle and header timeouts and a
// connection cap; with server.tls they serve TLS, and without it a
// non-loopback address is refused unless server.allow_insecure is set. A
// SQLite store is opened with synchronous=FULL unless its options say
// otherwise: the authority acknowledges only durable writes.
//
// On shutdown the halves end their streams first, then calls in flight get
// server.shutdown_timeout to finish, then the store is closed. It logs
// "listening on ADDR" once the HTTP listener is bound (port 0 picks a free
// port).
func ServeWith(ctx context.Context, cfg *config.Server, so *ServeOptions) error {
	if cfg == nil {
		return fmt.Errorf("offsync: Serve: %w: nil config", core.ErrInvalid)
	}
	var o ServeOptions
	if so != nil {
		o = *so
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	v := cfg.Server
	opts, err := serverOptions(cfg, log)
	if err != nil {
		return err
	}
	opts.Tracer = o.Tracer
	if opts.Tracer == nil {
		opts.Tracer = tracing.New(nil)
	}
	if err := composeAuth(ctx, cfg, opts, log); err != nil {
		return err
	}
	tlsCfg, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(v.Transports))
	if v.Transports == nil {
		names = server.Transports()
	}
	if len(names) == 0 {
		return cfg.Wrap("server.transports", fmt.Errorf("%w: no transport to serve (known: none; import github.com/offsync/offsync)", core.ErrUnknownDriver))
	}

	store, err := core.OpenStore(ctx, cfg.Store.Driver, cfg.Store.DSN, authorityStoreOptions(cfg.Store))
	if err != nil {
		return cfg.Wrap("store", fmt.Errorf("open the %s store: %w", cfg.Store.Driver, err))
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the store", "err", err)
		}
	}()
	svc, err := server.New(ctx, store, opts)
	if err != nil {
		return fmt.Errorf("offsync: start the authority: %w", err)
	}
	defer svc.Close()

	// Open every half before binding anything.
	var (
		servedMu sync.RWMutex
		served   = map[string]string{}
	)
	servedFn := func() map[string]string {
		servedMu.RLock()
		defer servedMu.RUnlock()
		return maps.Clone(served)
	}
	type half struct {
		name string
		drv  server.TransportDriver
		ts   server.TransportServer
		addr string // a listener half's address
	}
	var halves []half
	mounts := map[string]http.Handler{}
	shutdownAll := func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, h := range halves {
			wg.Go(func() {
				if err := h.ts.Shutdown(ctx); err != nil {
					log.Warn("transport shutdown", "transport", h.name, "err", err)
				}
			})
		}
		wg.Wait()
	}
	limits := server.Limits{MaxMessage: v.MaxBody, MaxInFlight: v.MaxInFlight, Heartbeat: v.Heartbeat}
	for _, name := range names {
		drv, err := server.LookupTransport(name)
		if err != nil {
			shutdownAll(ctx)
			return cfg.Wrap("server.transports."+name, err)
		}
		tc := v.Transports[name]
		addr := tc.Addr
		if drv.OwnsListener() && addr == "" {
			addr = defaultAddr(drv.Addr, v.HTTP)
		}
		ts, err := server.OpenServer(ctx, name, svc, server.TransportConfig{
			Path: tc.Path, Addr: addr, Options: tc.Options, Limits: limits, TLS: tlsCfg,
			Served: servedFn, Logger: log.With("transport", name),
		})
		if err != nil {
			shutdownAll(ctx)
			return cfg.Wrap("server.transports."+name, err)
		}
		h := half{name: name, drv: drv, ts: ts, addr: addr}
		halves = append(halves, h)
		if hh, ok := ts.(server.HTTPTransport); ok {
			path := tc.Path
			if path == "" {
				path = drv.Path
			}
			if _, dup := mounts[path]; dup {
				shutdownAll(ctx)
				return cfg.Wrap("server.transports."+name+".path", fmt.Errorf("%w: two transports are mounted at %s", core.ErrInvalid, path))
			}
			mounts[path] = hh
			served[name] = path
		}
		if err := checkInsecure(addr, tlsCfg, v.AllowInsecure); drv.OwnsListener() && err != nil {
			shutdownAll(ctx)
			return cfg.Wrap("server.transports."+name+".addr", err)
		}
	}
	// The dashboard shares the HTTP listener of the halves mounted on it.
	if len(mounts) > 0 && v.UIEnabled() {
		if _, dup := mounts[uiPath]; dup {
			shutdownAll(ctx)
			return cfg.Wrap("server.ui", fmt.Errorf("%w: a transport is mounted at %s, the dashboard's path; set server.ui: false or move it", core.ErrInvalid, uiPath))
		}
		dash, err := ui.New(ctx, svc, store, &ui.Options{Logger: log})
		if err != nil {
			shutdownAll(ctx)
			return err
		}
		mounts[uiPath] = dash
	}
	// So do the metrics, behind the administrator's token.
	if len(mounts) > 0 && v.MetricsEnabled() {
		if _, dup := mounts[metricsPath]; dup {
			shutdownAll(ctx)
			return cfg.Wrap("server.metrics", fmt.Errorf("%w: a transport is mounted at %s, the metrics' path; set server.metrics: false or move it", core.ErrInvalid, metricsPath))
		}
		mounts[metricsPath] = server.AdminOnly(svc, metrics.Handler(svc))
	}
	if len(mounts) > 0 {
		if err := checkInsecure(v.HTTP, tlsCfg, v.AllowInsecure); err != nil {
			shutdownAll(ctx)
			return cfg.Wrap("server.http", err)
		}
	}

	// Bind.
	var lc net.ListenConfig
	var listeners []net.Listener
	closeListeners := func() {
		for _, ln := range listeners {
			_ = ln.Close()
		}
	}
	endpoints := map[string]string{}
	httpScheme, wsScheme, grpcScheme := "http", "ws", "grpc"
	if tlsCfg != nil {
		httpScheme, wsScheme, grpcScheme = "https", "wss", "grpcs"
	}
	var httpLn net.Listener
	if len(mounts) > 0 {
		ln, err := lc.Listen(ctx, "tcp", v.HTTP)
		if err != nil {
			shutdownAll(ctx)
			return cfg.Wrap("server.http", fmt.Errorf("%w: listen on %s: %v", core.ErrUnavailable, v.HTTP, err))
		}
		httpLn = netutil.LimitListener(ln, v.MaxConns)
		listeners = append(listeners, httpLn)
	}
	listenerOf := map[string]net.Listener{}
	for _, h := range halves {
		if !h.drv.OwnsListener() {
			continue
		}
		ln, err := lc.Listen(ctx, "tcp", h.addr)
		if err != nil {
			closeListeners()
			shutdownAll(ctx)
			return cfg.Wrap("server.transports."+h.name, fmt.Errorf("%w: listen on %s: %v", core.ErrUnavailable, h.addr, err))
		}
		ln = netutil.LimitListener(ln, v.MaxConns)
		listeners = append(listeners, ln)
		listenerOf[h.name] = ln
		servedMu.Lock()
		served[h.name] = ln.Addr().String()
		servedMu.Unlock()
		endpoints[h.name] = grpcScheme + "://" + ln.Addr().String()
	}

	// Serve.
	errc := make(chan error, len(listeners))
	var srv *http.Server
	if httpLn != nil {
		mux, err := server.NewHTTPMux(mounts)
		if err != nil {
			closeListeners()
			shutdownAll(ctx)
			return err
		}
		srv = &http.Server{
			Handler:           accessLog(log, upgradeDeadlines(mux)),
			ReadHeaderTimeout: v.ReadHeaderTimeout,
			ReadTimeout:       v.ReadTimeout,
			WriteTimeout:      v.WriteTimeout,
			IdleTimeout:       v.IdleTimeout,
			TLSConfig:         tlsCfg,
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		addr := httpLn.Addr().String()
		for name, path := range served {
			if _, own := listenerOf[name]; own {
				continue
			}
			scheme := httpScheme
			if name == "websocket" {
				scheme = wsScheme
			}
			endpoints[name] = scheme + "://" + addr + path
		}
		go func() {
			var err error
			if tlsCfg != nil {
				err = srv.ServeTLS(httpLn, "", "")
			} else {
				err = srv.Serve(httpLn)
			}
			errc <- err
		}()
	}
	// The start-up log says what is served and how before "listening on",
	// its last line: whoever waits for that line has read the rest.
	for _, h := range halves {
		if ln, ok := listenerOf[h.name]; ok {
			lt := h.ts.(server.ListenerTransport)
			go func() { errc <- lt.Serve(ln) }()
			log.Info("serving "+h.name+" on "+ln.Addr().String(), "transport", h.name, "listen", ln.Addr().String())
		} else {
			log.Info("serving "+h.name+" at "+served[h.name], "transport", h.name, "path", served[h.name])
		}
	}
	if _, ok := mounts[uiPath]; ok {
		log.Info("serving the dashboard at "+uiPath+" (an administrator's token required)", "path", uiPath)
	}
	logPolicy(log, cfg, opts)
	if httpLn != nil {
		addr := httpLn.Addr().String()
		log.Info("listening on "+addr, "addr", addr, "url", httpScheme+"://"+addr, "store", cfg.Store.Driver,
			"tls", tlsCfg != nil)
	}
	if o.Ready != nil {
		o.Ready(maps.Clone(endpoints))
	}

	var serveErr error
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr = fmt.Errorf("offsync: serve: %w", err)
		}
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", v.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.ShutdownTimeout)
	defer cancel()
	// Streams first (each half's going-away signal), then requests in flight.
	shutdownAll(sctx)
	if srv != nil {
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
			if serveErr == nil {
				serveErr = fmt.Errorf("offsync: shutdown: requests still running after %v: %w", v.ShutdownTimeout, err)
			}
		}
	}
	closeListeners()
	if serveErr == nil {
		log.Info("stopped")
	}
	return serveErr
}

// authorityStoreOptions are the store options of an authority: a SQLite
// store is durable on every commit (synchronous=FULL) unless the config
// says otherwise, since an acknowledged write must survive a power cut.
func authorityStoreOptions(st config.Store) map[string]any {
	if st.Driver != "sqlite" {
		return st.Options
	}
	if _, set := st.Options["synchronous"]; set {
		return st.Options
	}
	opts := maps.Clone(st.Options)
	if opts == nil {
		opts = map[string]any{}
	}
	opts["synchronous"] = "FULL"
	return opts
}

// upgradeDeadlines lifts the listener's read and write timeouts from
// connections that upgrade to a long-lived stream (WebSocket): their halves
// keep them alive with heartbeats instead.
func upgradeDeadlines(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Time{})
		}
		next.ServeHTTP(w, r)
	})
}

// defaultAddr turns a driver's default address into one: "+1" is the HTTP
// listener's host with its port plus one (port 0 stays 0).
func defaultAddr(def, httpAddr string) string {
	if def != "+1" {
		return def
	}
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return def
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return def
	}
	if n != 0 {
		n++
	}
	return net.JoinHostPort(host, strconv.Itoa(n))
}

// checkInsecure refuses a listener on a non-loopback address without TLS,
// unless allowed: bearer tokens would cross the network in clear text.
func checkInsecure(addr string, tlsCfg *tls.Config, allow bool) error {
	if tlsCfg != nil || allow || addr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: bad address %q: %v", core.ErrInvalid, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %s is not a loopback address and TLS is off: bearer tokens would cross the network in clear text; set server.tls (--tls-cert/--tls-key), or server.allow_insecure (--allow-insecure) behind a TLS proxy", core.ErrInvalid, addr)
}

// serverTLS loads the configured certificate.
func serverTLS(cfg *config.Server) (*tls.Config, error) {
	t := cfg.Server.TLS
	if t == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.Path(t.Cert), cfg.Path(t.Key))
	if err != nil {
		return nil, cfg.Wrap("server.tls", fmt.Errorf("%w: load the certificate: %v", core.ErrInvalid, err))
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// logPolicy says who may do what.
func logPolicy(log *slog.Logger, cfg *config.Server, opts *server.Options) {
	v := cfg.Server
	if len(v.Kinds) > 0 {
		log.Info("serving kinds", "kinds", strings.Join(v.Kinds, ","))
	}
	if opts.DynamicKinds != nil {
		log.Info("serving any kind matching "+v.DynamicKinds+" as documents", "pattern", v.DynamicKinds)
	}
	if opts.Authenticate == nil {
		log.Warn("authentication off: every caller is anonymous and may read and write everything (set server.tokens, server.jwt or --tokens)")
	} else {
		log.Info("authentication on: requests need a bearer token")
	}
}

// serverOptions turns a server config into the authority's options.
func serverOptions(cfg *config.Server, log *slog.Logger) (*server.Options, error) {
	v := cfg.Server
	opts := &server.Options{
		IdempotencyRetention: v.IdempotencyRetention,
		TombstoneRetention:   tombstoneRetention(v.TombstoneRetention),
		MaxBatch:             v.MaxBatch,
		MaxLimit:             v.MaxLimit,
		DefaultLimit:         v.DefaultLimit,
		MaxDepth:             v.MaxDepth,
		MaxRecordBytes:       v.MaxRecordBytes,
		MaxPageBytes:         v.MaxPageBytes,
		MaxDynamicKinds:      v.MaxDynamicKinds,
		Logger:               log,
	}
	for _, k := range v.Kinds {
		opts.Tables = append(opts.Tables, core.Documents(k))
	}
	if v.DynamicKinds != "" {
		re, err := regexp.Compile(v.DynamicKinds)
		if err != nil {
			return nil, cfg.Wrap("server.dynamic_kinds", fmt.Errorf("%w: %v", core.ErrInvalid, err))
		}
		opts.DynamicKinds = re
	}
	if v.TokenSecret != "" {
		opts.TokenSecret = []byte(v.TokenSecret)
	}
	principals, err := cfg.Principals()
	if err != nil {
		return nil, err
	}
	if len(principals) > 0 {
		opts.Authenticate = func(_ context.Context, token string) (core.Principal, error) {
			if p, ok := principals[token]; ok && token != "" {
				return p, nil
			}
			return core.Principal{}, fmt.Errorf("%w: unknown token", core.ErrUnauthorized)
		}
	}
	fields := map[string]string{}
	maps.Copy(fields, v.Scopes)
	var scopeAll string // the field of every kind not named
	if sc := v.Scope; sc != nil {
		if len(sc.Kinds) == 0 {
			scopeAll = sc.Field
		}
		for _, k := range sc.Kinds {
			fields[k] = sc.Field
		}
	}
	if len(fields) > 0 || scopeAll != "" {
		opts.Scope = func(_ context.Context, p core.Principal, kind string) (*core.Filter, error) {
			field, ok := fields[kind]
			if !ok {
				field = scopeAll
			}
			if field == "" {
				return nil, nil
			}
			return &core.Filter{Field: field, Values: []string{p.ID}}, nil
		}
	}
	return opts, nil
}

// statusWriter remembers the status of a response for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush, Hijack and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// accessLog logs every HTTP request at debug level (nothing is wrapped
// when debug is off).
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.EscapedPath(),
			"status", sw.status, "duration", time.Since(start))
	})
}

// tombstoneRetention is the configured retention of tombstones (the
// config's default when unset).
func tombstoneRetention(d *time.Duration) time.Duration {
	if d == nil {
		return config.DefaultTombstoneRetention
	}
	return *d
}
