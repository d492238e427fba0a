package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/internal/bunstore"
)

// DefaultChannel is the LISTEN/NOTIFY channel of Announce and Listen.
const DefaultChannel = "offsync"

// Options configures Open. The zero value (or nil) is ready to use.
type Options struct {
	// MaxOpenConns bounds the connection pool (0 = database/sql's default,
	// no limit). Listen uses connections of its own, outside the pool.
	MaxOpenConns int
	// MaxIdleConns is the pool's idle connections (0 = 8).
	MaxIdleConns int
	// Channel is the LISTEN/NOTIFY channel (default "offsync"); deployments
	// sharing a database but not their data use different channels.
	Channel string
	// Logger receives the store's log lines, such as a column Register
	// added to a synced table (nil: slog.Default()).
	Logger *slog.Logger
}

// Store is the PostgreSQL core.Store: a bunstore.Store that is also a
// core.Notifier.
type Store struct {
	*bunstore.Store
	cfg     *pgx.ConnConfig
	channel string

	mu      sync.Mutex
	closed  bool
	cancels map[*int]context.CancelFunc // running Listen loops
	wg      sync.WaitGroup
}

var (
	_ core.Store    = (*Store)(nil)
	_ core.Notifier = (*Store)(nil)
)

// Open connects to the database named by dsn (a postgres:// URL or a
// keyword/value string, as pgx reads them) and checks that it answers.
// Register must be called before the store is used.
func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	if opts.MaxOpenConns < 0 || opts.MaxIdleConns < 0 {
		return nil, fmt.Errorf("%w: postgres: negative pool size", core.ErrInvalid)
	}
	channel := opts.Channel
	if channel == "" {
		channel = DefaultChannel
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres: bad DSN: %v", core.ErrInvalid, err)
	}
	// bun inlines every argument, so each statement text is new: the
	// simple protocol runs it in one round trip, where the default mode
	// would prepare (and cache) every one first.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(opts.MaxOpenConns)
	idle := opts.MaxIdleConns
	if idle == 0 {
		idle = 8
	}
	sqldb.SetMaxIdleConns(idle)
	db := bun.NewDB(sqldb, pgdialect.New())
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("offsync: postgres: connect: %w: %v", core.ErrUnavailable, err)
	}
	bs, err := bunstore.New(bunstore.Config{DB: db, Dialect: dialect{}, Logger: opts.Logger})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Store{Store: bs, cfg: cfg, channel: channel, cancels: map[*int]context.CancelFunc{}}, nil
}

// Close stops the store's Listen loops (closing their channels) and closes
// the database. Calls after the first return nil.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, cancel := range s.cancels {
		cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return s.Store.Close()
}

func init() {
	core.RegisterStore("postgres", func(ctx context.Context, dsn string, opts map[string]any) (core.Store, error) {
		o, err := optionsFrom(opts)
		if err != nil {
			return nil, err
		}
		return Open(ctx, dsn, o)
	})
}

// optionsFrom reads the options of a config file: max_open_conns,
// max_idle_conns, channel. An unknown key is an error.
func optionsFrom(m map[string]any) (*Options, error) {
	o := &Options{}
	for k, v := range m {
		var err error
		switch k {
		case "max_open_conns":
			o.MaxOpenConns, err = intOption(k, v)
		case "max_idle_conns":
			o.MaxIdleConns, err = intOption(k, v)
		case "channel":
			s, ok := v.(string)
			if !ok {
				err = fmt.Errorf("%w: postgres: option %q must be a string", core.ErrInvalid, k)
			}
			o.Channel = s
		default:
			err = fmt.Errorf("%w: postgres: unknown option %q", core.ErrInvalid, k)
		}
		if err != nil {
			return nil, err
		}
	}
	return o, nil
}

func intOption(k string, v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case int64:
		return int(n), nil
	case uint64:
		return int(n), nil
	case float64:
		if n == float64(int(n)) {
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("%w: postgres: option %q must be an integer", core.ErrInvalid, k)
}

// errListenClosed reports a Listen on a closed store.
var errListenClosed = fmt.Errorf("offsync: postgres: listen: %w", core.ErrClosed)

// reconnect backoff bounds of Listen.
const (
	listenBackoffMin = 50 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)
