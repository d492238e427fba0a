package plugins

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/offsync/offsync/core"
	resolverv1 "github.com/offsync/offsync/plugins/proto/resolver/v1"
)

// ProtocolVersion is the version of the resolver protocol (and of the
// handshake) this package speaks: proto/resolver/v1.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake of resolver plugins. A host refuses a
// binary that answers another protocol version, and a resolver plugin run
// by hand (without the cookie) explains that it is a plugin and exits.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "OFFSYNC_RESOLVER_PLUGIN",
	MagicCookieValue: "b3f6c1e2a9d04e7f8c5b1a2d3e4f5061-offsync-resolver",
}

// pluginName is the name under which the resolver is dispensed.
const pluginName = "resolver"

// maxMessage bounds one gRPC message each way (a batch of large records).
const maxMessage = 64 << 20

// ServeOptions describe a plugin to hosts. The zero value is valid.
type ServeOptions struct {
	// Name and Version identify the plugin in the host's logs.
	Name, Version string
	// MaxBatch is the most conflicts accepted in one batch call (0 = no
	// limit); the host splits larger batches.
	MaxBatch int
	// Kinds, when set, lists the kinds the plugin is meant for
	// (informational).
	Kinds []string
	// Logger receives go-plugin's own logs in the plugin process (default:
	// JSON on stderr, which the host routes to its logger with levels).
	Logger hclog.Logger
}

// Serve runs r as a resolver plugin and returns when the host is done with
// it. It is called from a plugin's main. When r also implements
// core.BatchResolver, batches go to it in one call; otherwise Serve resolves
// a batch conflict by conflict. The context r receives carries the host
// caller's deadline and cancellation. Serve panics when r is nil.
func Serve(r core.Resolver, opts *ServeOptions) {
	if r == nil {
		panic("offsync/plugins: Serve called with a nil resolver")
	}
	var o ServeOptions
	if opts != nil {
		o = *opts
	}
	if o.Logger == nil {
		o.Logger = hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Info})
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{pluginName: &grpcPlugin{server: newServer(r, o)}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage))...)
		},
		Logger: o.Logger,
	})
}

// grpcPlugin is the go-plugin glue: the server half in the plugin process,
// the client half in the host.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	server *server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	resolverv1.RegisterResolverServer(s, p.server)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return resolverv1.NewResolverClient(cc), nil
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

// server implements the protocol over a core.Resolver.
type server struct {
	resolverv1.UnimplementedResolverServer
	r    core.Resolver
	br   core.BatchResolver
	caps *resolverv1.CapabilitiesResponse
}

func newServer(r core.Resolver, o ServeOptions) *server {
	s := &server{r: r}
	s.br, _ = r.(core.BatchResolver)
	s.caps = &resolverv1.CapabilitiesResponse{
		Name: o.Name, Version: o.Version, NativeBatch: s.br != nil,
		MaxBatch: uint32(max(o.MaxBatch, 0)), Kinds: o.Kinds,
	}
	return s
}

func (s *server) Capabilities(context.Context, *resolverv1.CapabilitiesRequest) (*resolverv1.CapabilitiesResponse, error) {
	return s.caps, nil
}

func (s *server) Resolve(ctx context.Context, req *resolverv1.ResolveRequest) (*resolverv1.ResolveResponse, error) {
	c, err := conflictFromProto(req.GetConflict())
	if err != nil {
		return nil, statusOf(err)
	}
	res, err := s.resolveOne(ctx, c)
	if err != nil {
		return nil, statusOf(err)
	}
	pr, err := resolutionToProto(res)
	if err != nil {
		return nil, statusOf(fmt.Errorf("conflict %s/%s: %w", c.Kind, c.ID, err))
	}
	return &resolverv1.ResolveResponse{Resolution: pr}, nil
}

func (s *server) ResolveBatch(ctx context.Context, req *resolverv1.ResolveBatchRequest) (*resolverv1.ResolveBatchResponse, error) {
	pcs := req.GetConflicts()
	if max := s.caps.GetMaxBatch(); max > 0 && len(pcs) > int(max) {
		return nil, status.Errorf(codes.InvalidArgument, "batch of %d conflicts over the plugin's limit of %d", len(pcs), max)
	}
	cs := make([]core.Conflict, len(pcs))
	for i, pc := range pcs {
		c, err := conflictFromProto(pc)
		if err != nil {
			return nil, statusOf(fmt.Errorf("conflict %d: %w", i, err))
		}
		cs[i] = c
	}
	var res []core.Resolution
	var err error
	if s.br != nil {
		res, err = s.resolveBatch(ctx, cs)
		if err == nil && len(res) != len(cs) {
			err = fmt.Errorf("%w: resolver returned %d resolutions for %d conflicts", core.ErrInvalid, len(res), len(cs))
		}
	} else {
		res = make([]core.Resolution, len(cs))
		for i, c := range cs {
			if err = ctx.Err(); err != nil {
				break
			}
			if res[i], err = s.resolveOne(ctx, c); err != nil {
				err = fmt.Errorf("conflict %s/%s: %w", c.Kind, c.ID, err)
				break
			}
		}
	}
	if err != nil {
		return nil, statusOf(err)
	}
	out := &resolverv1.ResolveBatchResponse{Resolutions: make([]*resolverv1.Resolution, len(res))}
	for i, r := range res {
		pr, err := resolutionToProto(r)
		if err != nil {
			return nil, statusOf(fmt.Errorf("conflict %s/%s: %w", cs[i].Kind, cs[i].ID, err))
		}
		out.Resolutions[i] = pr
	}
	return out, nil
}

// resolveOne and resolveBatch turn a resolver's panic into an error, so one
// bad conflict does not take the plugin down.
func (s *server) resolveOne(ctx context.Context, c core.Conflict) (res core.Resolution, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("resolver panicked: %v", p)
		}
	}()
	return s.r.Resolve(ctx, c)
}

func (s *server) resolveBatch(ctx context.Context, cs []core.Conflict) (res []core.Resolution, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("resolver panicked: %v", p)
		}
	}()
	return s.br.ResolveBatch(ctx, cs)
}

// The status codes of core's sentinels, both ways.
var sentinelCodes = []struct {
	err  error
	code codes.Code
}{
	{core.ErrInvalid, codes.InvalidArgument},
	{core.ErrRejected, codes.FailedPrecondition},
	{core.ErrNotFound, codes.NotFound},
	{core.ErrUnavailable, codes.Unavailable},
	{core.ErrUnauthorized, codes.Unauthenticated},
	{core.ErrForbidden, codes.PermissionDenied},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
}

// statusOf is the gRPC status of a resolver error, keeping its sentinel.
func statusOf(err error) error {
	for _, s := range sentinelCodes {
		if errors.Is(err, s.err) {
			return status.Error(s.code, err.Error())
		}
	}
	return status.Error(codes.Unknown, err.Error())
}

// sentinelOf is the core sentinel of a status code, nil for none.
func sentinelOf(c codes.Code) error {
	for _, s := range sentinelCodes {
		if s.code == c {
			return s.err
		}
	}
	return nil
}
