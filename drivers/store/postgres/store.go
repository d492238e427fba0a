package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// Notify is how Listen learns of the writes of every instance:
	// NotifyListen (LISTEN/NOTIFY), NotifyPoll (reading offsync_versions
	// every PollInterval; for a database without LISTEN/NOTIFY, such as
	// CockroachDB) or NotifyAuto (the default: LISTEN/NOTIFY, and polling
	// when the database refuses LISTEN as unsupported).
	Notify string
	// PollInterval is the period of NotifyPoll (0 = DefaultPollInterval).
	PollInterval time.Duration
	// RetryAttempts bounds the runs of a write transaction that meets a
	// serialization failure (SQLSTATE 40001) or is a deadlock's victim
	// (40P01): it is rolled back and run again, after a capped, jittered
	// backoff, at most this many times in all (0 = 12; 1 = never run again:
	// the failure is returned). Other failures are never retried.
	RetryAttempts int
}

// Notify modes of Options.Notify.
const (
	NotifyAuto   = "auto"
	NotifyListen = "listen"
	NotifyPoll   = "poll"
)

// DefaultPollInterval is NotifyPoll's period when Options sets none.
const DefaultPollInterval = 500 * time.Millisecond

// Store is the PostgreSQL core.Store: a bunstore.Store that is also a
// core.Notifier.
type Store struct {
	*bunstore.Store
	cfg     *pgx.ConnConfig
	channel string
	mode    string        // NotifyAuto, NotifyListen or NotifyPoll
	poll    time.Duration // NotifyPoll's period
	polling atomic.Bool   // NotifyPoll, or NotifyAuto found LISTEN unsupported
	log     *slog.Logger

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
	mode := opts.Notify
	switch mode {
	case "":
		mode = NotifyAuto
	case NotifyAuto, NotifyListen, NotifyPoll:
	default:
		return nil, fmt.Errorf("%w: postgres: notify %q (want %q, %q or %q)", core.ErrInvalid, mode, NotifyListen, NotifyPoll, NotifyAuto)
	}
	if opts.PollInterval < 0 || opts.RetryAttempts < 0 {
		return nil, fmt.Errorf("%w: postgres: negative poll_interval or retry_attempts", core.ErrInvalid)
	}
	poll := opts.PollInterval
	if poll == 0 {
		poll = DefaultPollInterval
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
	bs, err := bunstore.New(bunstore.Config{DB: db, Dialect: dialect{}, Logger: opts.Logger,
		Retry: bunstore.RetryPolicy{Attempts: opts.RetryAttempts}})
	if err != nil {
		db.Close()
		return nil, err
	}
	st := &Store{Store: bs, cfg: cfg, channel: channel, mode: mode, poll: poll, log: opts.Logger,
		cancels: map[*int]context.CancelFunc{}}
	switch mode {
	case NotifyPoll:
		st.polling.Store(true)
	case NotifyAuto:
		if err := st.probeListen(ctx); err != nil {
			bs.Close()
			return nil, err
		}
	}
	return st, nil
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
// max_idle_conns, channel, notify, poll_interval (a duration string),
// retry_attempts. An unknown key is an error.
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
		case "notify":
			s, ok := v.(string)
			if !ok {
				err = fmt.Errorf("%w: postgres: option %q must be a string", core.ErrInvalid, k)
			}
			o.Notify = s
		case "poll_interval":
			s, ok := v.(string)
			if !ok {
				err = fmt.Errorf("%w: postgres: option %q must be a duration such as \"500ms\"", core.ErrInvalid, k)
				break
			}
			o.PollInterval, err = time.ParseDuration(s)
			if err != nil {
				err = fmt.Errorf("%w: postgres: option %q: %v", core.ErrInvalid, k, err)
			}
		case "retry_attempts":
			o.RetryAttempts, err = intOption(k, v)
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
