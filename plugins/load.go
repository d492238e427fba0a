package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/offsync/offsync/core"
	resolverv1 "github.com/offsync/offsync/plugins/proto/resolver/v1"
)

var (
	// ErrPlugin is wrapped by every error of a call into a plugin that
	// failed (the plugin reported an error, crashed, hung past the call
	// timeout, exited mid-call or answered garbage), alongside the core
	// sentinel of the cause when there is one.
	ErrPlugin = errors.New("offsync: resolver plugin failed")
	// ErrChecksumMismatch is wrapped by Load's error when the binary's
	// SHA-256 differs from the pinned one; the binary was not run.
	ErrChecksumMismatch = fmt.Errorf("offsync: plugin checksum mismatch: %w", core.ErrForbidden)
)

// The defaults of LoadOptions.
const (
	DefaultStartTimeout = 10 * time.Second
	DefaultCallTimeout  = 30 * time.Second
	DefaultMaxBatch     = 1000
)

// LoadOptions configure a plugin host. The zero value is valid.
type LoadOptions struct {
	// SHA256 pins the binary: the hex SHA-256 it must have. Load and every
	// restart refuse a binary with another checksum before running it.
	// Empty means no pinning.
	SHA256 string
	// StartTimeout bounds a plugin's start, handshake included (default
	// DefaultStartTimeout; an earlier deadline of the caller's context wins).
	StartTimeout time.Duration
	// CallTimeout bounds each Resolve and ResolveBatch call (default
	// DefaultCallTimeout; an earlier deadline of the caller's context
	// wins). A plugin that overruns it is stopped and started again on the
	// next call.
	CallTimeout time.Duration
	// MaxBatch is the most conflicts sent in one batch call (default
	// DefaultMaxBatch, lowered to the plugin's own limit).
	MaxBatch int
	// Logger receives go-plugin's logs and the plugin's stderr (default
	// slog.Default()). Lines the plugin writes as hclog JSON keep their level;
	// other lines arrive at debug.
	Logger *slog.Logger
	// Args are passed to the binary; Env entries ("KEY=value") are added to
	// the host's environment for it.
	Args, Env []string
}

// Plugin is a resolver running in a plugin process. It implements
// core.Resolver, core.BatchResolver (one call per batch), core.Named
// ("plugin:<basename>") and io.Closer. It is safe for concurrent use.
type Plugin struct {
	path, name string
	sum        []byte // nil: not pinned
	opts       LoadOptions

	mu     sync.Mutex
	cur    *handle // nil: not running
	closed bool
}

// handle is one started plugin process.
type handle struct {
	client   *plugin.Client
	rpc      resolverv1.ResolverClient
	maxBatch int
}

var (
	_ core.Resolver      = (*Plugin)(nil)
	_ core.BatchResolver = (*Plugin)(nil)
	_ core.Named         = (*Plugin)(nil)
	_ io.Closer          = (*Plugin)(nil)
)

// Load starts the resolver plugin at path and returns it, with the closer
// that stops it (the same *Plugin). The binary is checked against
// opts.SHA256 before it runs; a mismatch is an error wrapping
// ErrChecksumMismatch that names the expected and the actual hash. A binary
// that is missing or bad options give an error wrapping core.ErrInvalid; a
// plugin that does not start, does not complete the handshake or speaks
// another protocol version gives one wrapping ErrPlugin.
func Load(ctx context.Context, path string, opts *LoadOptions) (core.Resolver, io.Closer, error) {
	p, err := Open(ctx, path, opts)
	if err != nil {
		return nil, nil, err
	}
	return p, p, nil
}

// Open is Load returning the concrete *Plugin.
func Open(ctx context.Context, path string, opts *LoadOptions) (*Plugin, error) {
	var o LoadOptions
	if opts != nil {
		o = *opts
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if path == "" {
		return nil, fmt.Errorf("%w: plugin path is empty", core.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: plugin path %q: %v", core.ErrInvalid, path, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("%w: plugin binary: %v", core.ErrInvalid, err)
	} else if fi.IsDir() {
		return nil, fmt.Errorf("%w: plugin binary %s is a directory", core.ErrInvalid, abs)
	}
	p := &Plugin{path: abs, name: "plugin:" + filepath.Base(abs), opts: o}
	if o.SHA256 != "" {
		sum, err := hex.DecodeString(strings.ToLower(strings.TrimSpace(o.SHA256)))
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("%w: plugin %s: sha256 %q is not 64 hex digits", core.ErrInvalid, abs, o.SHA256)
		}
		p.sum = sum
	}
	if _, err := p.handle(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// StrategyName implements core.Named: "plugin:" and the binary's base name.
func (p *Plugin) StrategyName() string { return p.name }

// Path is the binary's absolute path.
func (p *Plugin) Path() string { return p.path }

// Close stops the plugin process and waits for it to exit. Calls after
// Close fail with an error wrapping core.ErrClosed. Close is idempotent.
func (p *Plugin) Close() error {
	p.mu.Lock()
	h := p.cur
	p.cur, p.closed = nil, true
	p.mu.Unlock()
	if h != nil {
		h.client.Kill()
	}
	return nil
}

// Resolve implements core.Resolver with one call into the plugin.
func (p *Plugin) Resolve(ctx context.Context, c core.Conflict) (core.Resolution, error) {
	what := "resolve " + c.Kind + "/" + c.ID
	h, err := p.handle(ctx)
	if err != nil {
		return core.Resolution{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	resp, err := h.rpc.Resolve(cctx, &resolverv1.ResolveRequest{Conflict: conflictToProto(&c)})
	if err != nil {
		return core.Resolution{}, p.callError(ctx, h, what, err)
	}
	res, err := resolutionFromProto(resp.GetResolution())
	if err != nil {
		return core.Resolution{}, p.errorf(what, "%w: %w", ErrPlugin, err)
	}
	return res, nil
}

// ResolveBatch implements core.BatchResolver: the conflicts go to the
// plugin in calls of at most MaxBatch conflicts, several calls in flight at
// once (one per CPU) so that the plugin resolves while the host decodes. Any
// failed call fails the whole batch.
func (p *Plugin) ResolveBatch(ctx context.Context, cs []core.Conflict) ([]core.Resolution, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	h, err := p.handle(ctx)
	if err != nil {
		return nil, err
	}
	size := min(h.maxBatch, max(minChunk, (len(cs)+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0)))
	out := make([]core.Resolution, len(cs))
	if len(cs) <= size {
		if err := p.resolveChunk(ctx, h, cs, out); err != nil {
			return nil, err
		}
		return out, nil
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, (len(cs)+size-1)/size)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i, start := 0, 0; start < len(cs); i, start = i+1, start+size {
		end := min(start+size, len(cs))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if errs[i] = p.resolveChunk(cctx, h, cs[start:end], out[start:end]); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// minChunk is the smallest batch call worth running beside another.
const minChunk = 64

// resolveChunk resolves cs in one call into out.
func (p *Plugin) resolveChunk(ctx context.Context, h *handle, cs []core.Conflict, out []core.Resolution) error {
	req := &resolverv1.ResolveBatchRequest{Conflicts: make([]*resolverv1.Conflict, len(cs))}
	for i := range cs {
		req.Conflicts[i] = conflictToProto(&cs[i])
	}
	what := fmt.Sprintf("resolve a batch of %d conflicts", len(cs))
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	resp, err := h.rpc.ResolveBatch(cctx, req)
	if err != nil {
		return p.callError(ctx, h, what, err)
	}
	if n := len(resp.GetResolutions()); n != len(cs) {
		return p.errorf(what, "%w: %w: %d resolutions for %d conflicts", ErrPlugin, core.ErrInvalid, n, len(cs))
	}
	for i, pr := range resp.GetResolutions() {
		res, err := resolutionFromProto(pr)
		if err != nil {
			return p.errorf(what, "%w: conflict %s/%s: %w", ErrPlugin, cs[i].Kind, cs[i].ID, err)
		}
		out[i] = res
	}
	return nil
}

func (p *Plugin) errorf(what, format string, args ...any) error {
	return fmt.Errorf("offsync/plugins: %s (%s): %s: %w", p.name, p.path, what, fmt.Errorf(format, args...))
}

// callError turns a failed call into an error naming the plugin, and stops
// the plugin when it is gone or overran the call timeout, so that the next
// call starts it again.
func (p *Plugin) callError(ctx context.Context, h *handle, what string, err error) error {
	st, _ := status.FromError(err)
	if ctx.Err() != nil {
		// The caller gave up; the plugin saw the cancellation too.
		return p.errorf(what, "%w: %w", ErrPlugin, ctx.Err())
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		p.drop(h)
		return p.errorf(what, "%w: no answer within the call timeout of %s: %w", ErrPlugin, p.opts.CallTimeout, context.DeadlineExceeded)
	case codes.Unavailable, codes.Canceled, codes.Internal:
		if h.client.Exited() || h.ping() != nil {
			p.drop(h)
			return p.errorf(what, "%w: plugin process exited or stopped answering (%s): %w", ErrPlugin, st.Message(), core.ErrUnavailable)
		}
	}
	if s := sentinelOf(st.Code()); s != nil {
		return p.errorf(what, "%w: %s: %w", ErrPlugin, st.Message(), s)
	}
	return p.errorf(what, "%w: %s", ErrPlugin, st.Message())
}

func (h *handle) ping() error {
	c, err := h.client.Client()
	if err != nil {
		return err
	}
	return c.Ping()
}

// drop stops h if it is still the current process.
func (p *Plugin) drop(h *handle) {
	p.mu.Lock()
	if p.cur == h {
		p.cur = nil
	}
	p.mu.Unlock()
	h.client.Kill()
}

// handle returns the running plugin, starting it when it is not running
// (first call, or after it died).
func (p *Plugin) handle(ctx context.Context) (*handle, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("offsync/plugins: %s: %w", p.name, core.ErrClosed)
	}
	if p.cur != nil {
		if !p.cur.client.Exited() {
			return p.cur, nil
		}
		p.cur.client.Kill()
		p.cur = nil
	}
	h, err := p.start(ctx)
	if err != nil {
		return nil, err
	}
	p.cur = h
	return h, nil
}

// fileSHA256 hashes the file at path.
func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func (p *Plugin) start(ctx context.Context) (*handle, error) {
	if err := ctx.Err(); err != nil {
		return nil, p.errorf("start", "%w: %w", ErrPlugin, err)
	}
	var secure *plugin.SecureConfig
	if p.sum != nil {
		// Checked here, before anything runs, so the error can name both
		// hashes; go-plugin checks again right before exec.
		actual, err := fileSHA256(p.path)
		if err != nil {
			return nil, p.errorf("start", "%w: %v", core.ErrInvalid, err)
		}
		if string(actual) != string(p.sum) {
			return nil, p.errorf("start", "%w: expected sha256 %x, binary has sha256 %x; not started",
				ErrChecksumMismatch, p.sum, actual)
		}
		secure = &plugin.SecureConfig{Checksum: p.sum, Hash: sha256.New()}
	}
	timeout := p.opts.StartTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = max(time.Until(d), time.Millisecond)
	}
	cmd := exec.Command(p.path, p.opts.Args...)
	cmd.Env = append(os.Environ(), p.opts.Env...)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          plugin.PluginSet{pluginName: &grpcPlugin{}},
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env already has it, with Env taking precedence
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		SecureConfig:     secure,
		AutoMTLS:         true,
		StartTimeout:     timeout,
		Logger:           newSlogLogger(p.opts.Logger.With("plugin", p.name)),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage))},
	})
	fail := func(err error) (*handle, error) {
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return nil, p.errorf("start", "%w: the binary changed after it was checked", ErrChecksumMismatch)
		}
		return nil, p.errorf("start", "%w: %v", ErrPlugin, err)
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(err)
	}
	raw, err := rpc.Dispense(pluginName)
	if err != nil {
		return fail(err)
	}
	rc, ok := raw.(resolverv1.ResolverClient)
	if !ok {
		return fail(fmt.Errorf("dispensed %T, not a resolver client", raw))
	}
	h := &handle{client: client, rpc: rc, maxBatch: p.opts.MaxBatch}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	caps, err := rc.Capabilities(cctx, &resolverv1.CapabilitiesRequest{})
	if err != nil {
		return fail(fmt.Errorf("capabilities: %w", err))
	}
	if m := int(caps.GetMaxBatch()); m > 0 && m < h.maxBatch {
		h.maxBatch = m
	}
	p.opts.Logger.Debug("resolver plugin started", "plugin", p.name, "path", p.path,
		"name", caps.GetName(), "version", caps.GetVersion(), "native_batch", caps.GetNativeBatch())
	return h, nil
}
