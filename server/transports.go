package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/offsync/offsync/core"
)

// A wire driver is a pair: a client (core.Transport, registered with
// core.RegisterTransport) and a server half that exposes any core.Transport —
// normally a *Service — over the wire. Server halves register here by name, in
// the driver's init, so that offsync.Serve and `offsync serve` compose them
// from configuration, as database/sql composes drivers.

// TransportServer is a running server half. It is either an HTTPTransport,
// mounted on the shared HTTP listener, or a ListenerTransport with a
// listener of its own.
type TransportServer interface {
	// Shutdown ends the half's long-lived streams (each with its wire's
	// "going away" signal) and waits for calls in flight until ctx is done.
	// It does not close the authority. It is safe to call more than once.
	Shutdown(ctx context.Context) error
}

// HTTPTransport is a server half mounted on the shared HTTP listener. The
// handler sees request paths with the mount path stripped ("/" for the
// mount point itself).
type HTTPTransport interface {
	TransportServer
	http.Handler
}

// ListenerTransport is a server half that owns a listener (gRPC). Serve
// blocks until Shutdown, returning nil then.
type ListenerTransport interface {
	TransportServer
	Serve(ln net.Listener) error
}

// TransportConfig is what a server half is opened with: where it is served,
// its driver options, and the limits every wire form shares.
type TransportConfig struct {
	// Path is the mount path on the shared HTTP listener of an HTTP half
	// (its driver's default when empty).
	Path string
	// Addr is the listen address of a half with its own listener (its
	// driver's default when empty). The bound address reaches Served.
	Addr string
	// Options are the driver's own settings from the config; a driver
	// refuses a key it does not know (core.ErrInvalid, naming the known ones).
	Options map[string]any
	// Limits are the edge limits every wire form enforces.
	Limits Limits
	// TLS, when set, is the certificate of the server: a half that owns
	// its listener must serve TLS with it (offsync.ServeWith announces its
	// endpoint as grpcs://); the shared HTTP listener serves it itself.
	TLS *tls.Config
	// Served lists every wire form of this server and where it is ("rest":
	// "/", "websocket": "/ws", "grpc": "127.0.0.1:8081"), for discovery in
	// health and capability answers. It may be nil; call it per request (a
	// listener's address is known only once it is bound).
	Served func() map[string]string
	// Logger receives the half's logs; never nil when opened by OpenServer.
	Logger *slog.Logger
}

// Limits are the edge limits shared by every wire form. The authority
// applies its own (batch size, page size, ids, kinds, nesting) on every
// call; these bound what a connection may send before the authority sees it.
type Limits struct {
	// MaxMessage bounds one request body or message in bytes (REST: 413;
	// WebSocket: close 1009; gRPC: ResourceExhausted; GraphQL: TOO_LARGE).
	MaxMessage int64
	// MaxInFlight bounds the requests in flight on one connection of a
	// multiplexing wire (WebSocket, gRPC streams); beyond it a request is
	// answered 429.
	MaxInFlight int
	// SendQueue bounds the frames waiting to be written to one connection;
	// a peer too slow to read is disconnected rather than buffered for.
	SendQueue int
	// Heartbeat is the keep-alive period of long-lived connections and
	// streams: a peer silent for two periods is gone.
	Heartbeat time.Duration
	// AuthTimeout bounds how long a connection may take to authenticate
	// when the token comes in a message rather than with the handshake.
	AuthTimeout time.Duration
}

// Default edge limits.
const (
	DefaultMaxMessage  = 4 << 20
	DefaultMaxInFlight = 64
	DefaultSendQueue   = 256
	DefaultHeartbeat   = 15 * time.Second
	DefaultAuthTimeout = 10 * time.Second
)

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxMessage <= 0 {
		l.MaxMessage = DefaultMaxMessage
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = DefaultMaxInFlight
	}
	if l.SendQueue <= 0 {
		l.SendQueue = DefaultSendQueue
	}
	if l.Heartbeat <= 0 {
		l.Heartbeat = DefaultHeartbeat
	}
	if l.AuthTimeout <= 0 {
		l.AuthTimeout = DefaultAuthTimeout
	}
	return l
}

// TransportOpener opens a server half over t. It validates cfg (the path or
// address, the options) and binds nothing: offsync.Serve opens every
// configured half before it listens anywhere.
type TransportOpener func(ctx context.Context, t core.Transport, cfg TransportConfig) (TransportServer, error)

// TransportDriver describes a registered server half.
type TransportDriver struct {
	// Open opens the half. Required.
	Open TransportOpener
	// Path is the default mount path of an HTTP half ("/" for REST, "/ws").
	// Exactly one of Path and Addr is set.
	Path string
	// Addr is the default listen address of a half with its own listener;
	// "+1" means "the HTTP listener's port plus one" (port 0 stays 0).
	Addr string
	// Rank orders the halves when no configuration names them: lower
	// first; it decides which half answers a path two halves could claim.
	Rank int
}

// OwnsListener reports whether the half has a listener of its own.
func (d TransportDriver) OwnsListener() bool { return d.Addr != "" }

var (
	halvesMu sync.RWMutex
	halves   = map[string]TransportDriver{}
)

// RegisterTransport makes a transport's server half available by name. It
// panics on an empty name, a nil opener, a driver with both or neither of
// Path and Addr, or a name registered twice.
func RegisterTransport(name string, d TransportDriver) {
	if name == "" {
		panic("offsync: server.RegisterTransport with an empty name")
	}
	if d.Open == nil {
		panic(fmt.Sprintf("offsync: server.RegisterTransport %q with a nil opener", name))
	}
	if (d.Path == "") == (d.Addr == "") {
		panic(fmt.Sprintf("offsync: server.RegisterTransport %q: set exactly one of Path and Addr", name))
	}
	halvesMu.Lock()
	defer halvesMu.Unlock()
	if _, dup := halves[name]; dup {
		panic(fmt.Sprintf("offsync: server.RegisterTransport called twice for %q", name))
	}
	halves[name] = d
}

// LookupTransport returns the server half registered as name. An unknown
// name is core.ErrUnknownDriver, listing the known ones.
func LookupTransport(name string) (TransportDriver, error) {
	halvesMu.RLock()
	d, ok := halves[name]
	halvesMu.RUnlock()
	if !ok {
		return TransportDriver{}, fmt.Errorf("%w: unknown transport %q (forgotten import?); known: %s",
			core.ErrUnknownDriver, name, strings.Join(Transports(), ", "))
	}
	return d, nil
}

// Transports lists the registered server halves by Rank, then name.
func Transports() []string {
	halvesMu.RLock()
	defer halvesMu.RUnlock()
	out := make([]string, 0, len(halves))
	for k := range halves {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		ri, rj := halves[out[i]].Rank, halves[out[j]].Rank
		if ri != rj {
			return ri < rj
		}
		return out[i] < out[j]
	})
	return out
}

// OpenServer opens the server half registered as name over t. Empty Path or
// Addr take the driver's defaults, zero limits theirs, and a nil Logger
// discards.
func OpenServer(ctx context.Context, name string, t core.Transport, cfg TransportConfig) (TransportServer, error) {
	d, err := LookupTransport(name)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, fmt.Errorf("server: open %s: %w: nil transport", name, core.ErrInvalid)
	}
	if d.OwnsListener() {
		if cfg.Path != "" {
			return nil, fmt.Errorf("server: open %s: %w: it has a listener of its own; set addr, not path", name, core.ErrInvalid)
		}
		if cfg.Addr == "" {
			cfg.Addr = d.Addr
		}
	} else {
		if cfg.Addr != "" {
			return nil, fmt.Errorf("server: open %s: %w: it is served on the HTTP listener; set path, not addr", name, core.ErrInvalid)
		}
		if cfg.Path == "" {
			cfg.Path = d.Path
		}
		if !strings.HasPrefix(cfg.Path, "/") {
			return nil, fmt.Errorf("server: open %s: %w: path %q must start with /", name, core.ErrInvalid, cfg.Path)
		}
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ts, err := d.Open(ctx, t, cfg)
	if err != nil {
		return nil, fmt.Errorf("server: open %s: %w", name, err)
	}
	if svc, ok := t.(*Service); ok {
		svc.declareTransport(name) // its figures are shown from the start, zero
	}
	switch ts.(type) {
	case HTTPTransport:
		if d.OwnsListener() {
			return nil, fmt.Errorf("server: open %s: %w: the driver registered an address but returned an HTTP half", name, core.ErrInvalid)
		}
	case ListenerTransport:
		if !d.OwnsListener() {
			return nil, fmt.Errorf("server: open %s: %w: the driver registered a path but returned a listener half", name, core.ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("server: open %s: %w: %T is neither an HTTP nor a listener half", name, core.ErrInvalid, ts)
	}
	return ts, nil
}

// Authenticate is the one authentication step of every server half: the
// bearer token (already taken from the wire's header, metadata or auth
// message; "" when the caller sent none) goes through t's Authenticator, and
// the principal travels on in the returned context (core.WithPrincipal).
// A transport that does not authenticate returns ctx as it is. A refused
// token is core.ErrUnauthorized; an authenticator that cannot answer now,
// core.ErrUnavailable.
func Authenticate(ctx context.Context, t core.Transport, token string) (context.Context, error) {
	a, ok := t.(core.Authenticator)
	if !ok {
		return ctx, nil
	}
	p, err := a.Authenticate(ctx, token)
	if err != nil {
		return ctx, err
	}
	return core.WithPrincipal(ctx, p), nil
}
