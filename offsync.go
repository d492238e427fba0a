package offsync

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/tracing"

	// The first-party drivers, registered by name.
	_ "github.com/offsync/offsync/drivers/store/postgres"
	_ "github.com/offsync/offsync/drivers/store/sqlite"
	_ "github.com/offsync/offsync/drivers/transport/graphql"
	_ "github.com/offsync/offsync/drivers/transport/grpc"
	_ "github.com/offsync/offsync/drivers/transport/rest"
	_ "github.com/offsync/offsync/drivers/transport/websocket"
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
	if cfg.Transport.CAFile != "" {
		topts["ca_file"] = cfg.Transport.CAFile
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
		// The global OpenTelemetry provider: nothing until the program
		// sets one (docs/operations.md, Traces).
		Tracer: tracing.New(nil),
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
