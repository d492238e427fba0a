package offsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"

	// The first-party drivers, registered by name.
	_ "github.com/offsync/offsync/drivers/store/postgres"
	_ "github.com/offsync/offsync/drivers/store/sqlite"
	_ "github.com/offsync/offsync/plugins"
)

// Open composes a replica from a client config: the store and transport
// drivers it names (core.OpenStore, core.OpenTransport), the conflict
// strategy of each kind (built-in, or a plugin through the "plugin" resolver
// driver), a document table for each kind under tables, and the typed
// tables given here. Every failure points at the config line that caused it.
//
// Close the engine when done: it also closes the store and the plugin
// resolvers Open started (core.Options.Closers). Use RunOptions to run the
// config's sync schedule with Engine.Run.
func Open(ctx context.Context, cfg *config.Client, tables ...core.Table) (_ *core.Engine, err error) {
	if cfg == nil {
		return nil, fmt.Errorf("offsync: Open: %w: nil config", core.ErrInvalid)
	}
	var closers []io.Closer
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i].Close()
			}
		}
	}()

	all := slices.Clone(tables)
	given := map[string]bool{}
	for _, t := range tables {
		if t != nil {
			given[t.Kind()] = true
		}
	}
	for _, kind := range sortedKeys(cfg.Tables) {
		if given[kind] {
			return nil, cfg.Wrap("tables."+kind, fmt.Errorf("%w: kind %q is both a typed table from code and a document table in the config", core.ErrInvalid, kind))
		}
		all = append(all, core.Documents(kind))
	}
	kinds := map[string]bool{}
	for _, t := range all {
		if t != nil {
			kinds[t.Kind()] = true
		}
	}

	conflicts := core.Conflicts{Kinds: map[string]core.Resolver{}}
	conflicts.Default, err = resolver(ctx, cfg, "conflicts.default", cfg.Conflicts.Default, &closers)
	if err != nil {
		return nil, err
	}
	for _, kind := range sortedKeys(cfg.Conflicts.Kinds) {
		path := "conflicts.kinds." + kind
		if !kinds[kind] {
			return nil, cfg.Wrap(path, fmt.Errorf("%w: a strategy for kind %q, which is not synced (add it under tables, or pass its typed table to Open)", core.ErrUnknownKind, kind))
		}
		r, err := resolver(ctx, cfg, path, cfg.Conflicts.Kinds[kind], &closers)
		if err != nil {
			return nil, err
		}
		conflicts.Kinds[kind] = r
	}

	store, err := core.OpenStore(ctx, cfg.Store.Driver, cfg.Store.DSN, cfg.Store.Options)
	if err != nil {
		return nil, cfg.Wrap("store", fmt.Errorf("open the %s store: %w", cfg.Store.Driver, err))
	}
	closers = append([]io.Closer{store}, closers...)

	topts := map[string]any{}
	for k, v := range cfg.Transport.Options {
		topts[k] = v
	}
	if cfg.Transport.Token != "" {
		topts["token"] = cfg.Transport.Token
	}
	tr, err := core.OpenTransport(ctx, cfg.Transport.Driver, cfg.Transport.URL, topts)
	if err != nil {
		return nil, cfg.Wrap("transport", fmt.Errorf("open the %s transport: %w", cfg.Transport.Driver, err))
	}
	if c, ok := tr.(io.Closer); ok {
		closers = append(closers, c)
	}

	eng, err := core.NewEngine(ctx, store, tr, &core.Options{
		Tables:         all,
		Conflicts:      conflicts,
		PageSize:       cfg.Sync.PageSize,
		BatchSize:      cfg.Sync.BatchSize,
		MaxAttempts:    cfg.Sync.MaxAttempts,
		ResyncInterval: cfg.Sync.ResyncInterval,
		Closers:        closers,
	})
	if err != nil {
		return nil, fmt.Errorf("offsync: %w", err)
	}
	return eng, nil
}

// resolver builds one configured strategy.
func resolver(ctx context.Context, cfg *config.Client, path string, s config.Strategy, closers *[]io.Closer) (core.Resolver, error) {
	if !s.IsPlugin() {
		name := s.Name
		if name == "" {
			name = config.DefaultStrategy
		}
		r, err := core.BuiltinStrategy(name)
		return r, cfg.Wrap(path, err)
	}
	opts := map[string]any{"path": cfg.PluginPath(s)}
	if s.SHA256 != "" {
		opts["sha256"] = s.SHA256
	}
	if s.Timeout > 0 {
		opts["timeout"] = s.Timeout.String()
	}
	r, err := core.OpenResolver(ctx, config.PluginDriver, opts)
	if err != nil {
		return nil, cfg.Wrap(path+".plugin", fmt.Errorf("load plugin %s: %w", s.Plugin, err))
	}
	if c, ok := r.(io.Closer); ok {
		*closers = append(*closers, c)
	}
	return r, nil
}

// RunOptions turns the config's sync schedule into Engine.Run options:
// Every(interval) when the interval is not zero, PushOnWrite(debounce) and
// Realtime when set, and PullOnStart always.
func RunOptions(cfg *config.Client) []core.RunOption {
	opts := []core.RunOption{core.PullOnStart()}
	if cfg.Sync.Interval > 0 {
		opts = append(opts, core.Every(cfg.Sync.Interval))
	}
	if cfg.Sync.PushOnWrite {
		if cfg.Sync.Debounce > 0 {
			opts = append(opts, core.PushOnWrite(cfg.Sync.Debounce))
		} else {
			opts = append(opts, core.PushOnWrite())
		}
	}
	if cfg.Sync.Realtime {
		opts = append(opts, core.Realtime())
	}
	return opts
}

// Serve runs the reference authority of a server config over the REST
// transport until ctx is done, then shuts down: event streams end, requests
// in flight get up to 10 s, and the store is closed. It logs through
// slog.Default, starting with "listening on ADDR" once the listener is bound
// (port 0 picks a free port).
func Serve(ctx context.Context, cfg *config.Server) error {
	if cfg == nil {
		return fmt.Errorf("offsync: Serve: %w: nil config", core.ErrInvalid)
	}
	log := slog.Default()
	opts, err := serverOptions(cfg, log)
	if err != nil {
		return err
	}
	store, err := core.OpenStore(ctx, cfg.Store.Driver, cfg.Store.DSN, cfg.Store.Options)
	if err != nil {
		return cfg.Wrap("store", fmt.Errorf("open the %s store: %w", cfg.Store.Driver, err))
	}
	defer store.Close()
	svc, err := server.New(ctx, store, opts)
	if err != nil {
		return fmt.Errorf("offsync: start the authority: %w", err)
	}
	defer svc.Close()

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Server.HTTP)
	if err != nil {
		return cfg.Wrap("server.http", fmt.Errorf("%w: listen: %v", core.ErrUnavailable, err))
	}
	// Event streams never go idle: their requests end when shutdown starts.
	streams, endStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer endStreams()
	srv := &http.Server{
		Handler: rest.NewHandler(svc, &rest.HandlerOptions{
			MaxBody: cfg.Server.MaxBody, MaxBatch: cfg.Server.MaxBatch, MaxLimit: cfg.Server.MaxLimit,
			Heartbeat: cfg.Server.Heartbeat, Logger: log,
		}),
		BaseContext:       func(net.Listener) context.Context { return streams },
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(endStreams)
	addr := ln.Addr().String()
	log.Info("listening on "+addr, "addr", addr, "url", "http://"+addr, "store", cfg.Store.Driver)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("offsync: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("offsync: shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("offsync: serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// serverOptions turns a server config into the authority's options.
func serverOptions(cfg *config.Server, log *slog.Logger) (*server.Options, error) {
	v := cfg.Server
	opts := &server.Options{
		IdempotencyRetention: v.IdempotencyRetention,
		MaxBatch:             v.MaxBatch,
		MaxLimit:             v.MaxLimit,
		DefaultLimit:         v.DefaultLimit,
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
	if len(v.Tokens) > 0 {
		principals := map[string]core.Principal{}
		for _, t := range v.Tokens {
			principals[t.Token] = core.Principal{ID: t.Principal, Attrs: t.Attrs}
		}
		opts.Authenticate = func(_ context.Context, token string) (core.Principal, error) {
			if p, ok := principals[token]; ok && token != "" {
				return p, nil
			}
			return core.Principal{}, fmt.Errorf("%w: unknown token", core.ErrUnauthorized)
		}
	}
	if sc := v.Scope; sc != nil {
		field, scoped := sc.Field, sc.Kinds
		opts.Scope = func(_ context.Context, p core.Principal, kind string) (*core.Filter, error) {
			if len(scoped) > 0 && !slices.Contains(scoped, kind) {
				return nil, nil
			}
			return &core.Filter{Field: field, Values: []string{p.ID}}, nil
		}
	}
	return opts, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
