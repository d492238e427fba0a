package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/internal/bunstore"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/schema"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Options configure Open; nil means the defaults.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "NORMAL" (default; in WAL
	// mode a power loss may drop the last commits but never corrupts) or
	// "FULL" (every commit is durable; use it for an authority).
	Synchronous string
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection or process (default 5s).
	BusyTimeout time.Duration
	// ReadConns is the size of the read pool (default: GOMAXPROCS, at least 2).
	ReadConns int
	// Logger receives the store's log lines, such as a column Register
	// added to a synced table (nil: slog.Default()).
	Logger *slog.Logger
	// Driver is the database/sql driver name the files are opened with:
	// "sqlite" (modernc.org/sqlite) when empty, or a wrapper of that driver
	// registered under another name (for tracing, or counting statements).
	Driver string
}

// Store is a core.Store on SQLite. DB gives the *bun.DB for the
// application's own queries.
type Store struct {
	*bunstore.Store
}

var _ core.Store = (*Store)(nil)

// Bun returns the bun transaction underneath tx (a transaction of a Store),
// so the application's own bun writes share it with an outbox op. It
// returns nil for another store's transaction.
func Bun(tx core.Tx) bun.IDB { return bunstore.Bun(tx) }

// Open opens (creating if needed) the SQLite database dsn: a file path or a
// "file:" URI, optionally with modernc.org/sqlite query parameters. An
// in-memory database (":memory:", "mode=memory") uses one connection for
// reads and writes.
func Open(ctx context.Context, dsn string, opts *Options) (*Store, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if dsn == "" {
		return nil, fmt.Errorf("%w: sqlite: empty dsn", core.ErrInvalid)
	}
	sync := strings.ToUpper(o.Synchronous)
	switch sync {
	case "":
		sync = "NORMAL"
	case "NORMAL", "FULL", "EXTRA":
	default:
		return nil, fmt.Errorf("%w: sqlite: synchronous %q (want NORMAL or FULL)", core.ErrInvalid, o.Synchronous)
	}
	if o.BusyTimeout < 0 || o.ReadConns < 0 {
		return nil, fmt.Errorf("%w: sqlite: negative option", core.ErrInvalid)
	}
	if o.BusyTimeout == 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.ReadConns == 0 {
		o.ReadConns = max(2, runtime.GOMAXPROCS(0))
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	busy := "_pragma=busy_timeout(" + strconv.FormatInt(o.BusyTimeout.Milliseconds(), 10) + ")"
	memory := dsn == ":memory:" || strings.Contains(dsn, "mode=memory") || strings.HasPrefix(dsn, "file::memory:")

	driverName := o.Driver
	if driverName == "" {
		driverName = "sqlite"
	}
	// temp_store MEMORY keeps the sub-journal of a savepoint (the server's
	// bulk push runs in one) in memory: on disk it costs a write syscall
	// per page the savepoint changes, a fifth of a pushed batch's CPU.
	writeDSN := dsn + sep + busy + "&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")&_pragma=temp_store(MEMORY)&_txlock=immediate"
	wsql, err := sql.Open(driverName, writeDSN)
	if err != nil {
		return nil, fmt.Errorf("offsync: sqlite: open %q: %w", dsn, err)
	}
	wsql.SetMaxOpenConns(1)
	wsql.SetMaxIdleConns(1)
	wsql.SetConnMaxLifetime(0)
	wsql.SetConnMaxIdleTime(0)
	if err := wsql.PingContext(ctx); err != nil {
		wsql.Close()
		return nil, fmt.Errorf("offsync: sqlite: open %q: %w", dsn, err)
	}
	wdb := bun.NewDB(wsql, sqlitedialect.New())
	cfg := bunstore.Config{DB: wdb, Dialect: dialect{}, Logger: o.Logger}
	if !memory {
		readDSN := dsn + sep + busy + "&_pragma=query_only(1)"
		rsql, err := sql.Open(driverName, readDSN)
		if err != nil {
			wdb.Close()
			return nil, fmt.Errorf("offsync: sqlite: open %q: %w", dsn, err)
		}
		rsql.SetMaxOpenConns(o.ReadConns)
		rsql.SetMaxIdleConns(o.ReadConns)
		if err := rsql.PingContext(ctx); err != nil {
			rsql.Close()
			wdb.Close()
			return nil, fmt.Errorf("offsync: sqlite: open %q: %w", dsn, err)
		}
		cfg.ReadDB = bun.NewDB(rsql, sqlitedialect.New())
	}
	s, err := bunstore.New(cfg)
	if err != nil {
		wdb.Close()
		return nil, err
	}
	// Create the system tables now, so a store is usable before any kind is registered.
	if err := s.Register(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return &Store{Store: s}, nil
}

// dialect is SQLite's part of the shared bun store.
type dialect struct{}

var _ bunstore.Dialect = dialect{}

func (dialect) Name() string { return "sqlite" }

// SerialPrimaryKey is a rowid alias without AUTOINCREMENT: a new row gets
// the largest rowid + 1, so seq still orders the rows that exist (all the
// outbox needs); AUTOINCREMENT would also update sqlite_sequence on every
// insert, one more page in every local write's commit. Databases created
// before keep their AUTOINCREMENT column, which orders the same way.
func (dialect) SerialPrimaryKey() string { return "INTEGER PRIMARY KEY" }
func (dialect) JSONType() string         { return "TEXT" }

// JSONField reads the field as its SQL value (strings as text). A document
// SQLite's JSON functions cannot parse (malformed, or nested deeper than
// their 1000 levels) reads as NULL: json_extract would fail the whole
// statement, and one such row would break every scoped pull of its kind.
// json_valid costs a second parse, so it is asked only of documents over
// jsonShortBytes: a shorter one cannot nest 1001 levels (each level takes an
// opening and a closing byte), and every stored document is valid JSON
// (docData checks it), which SQLite's lenient parser reads.
func (dialect) JSONField(column, field string) schema.QueryWithArgs {
	path := `$."` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(field) + `"`
	col := bun.Ident(column)
	return bun.SafeQuery("(CASE WHEN octet_length(?) <= ? OR json_valid(?) THEN json_extract(?, ?) END)",
		col, jsonShortBytes, col, col, path)
}

// jsonShortBytes bounds the documents JSONField reads without json_valid.
const jsonShortBytes = 2000

// LockVersion needs no lock of its own: the write transaction began with
// BEGIN IMMEDIATE and holds the database's write lock.
func (dialect) LockVersion(ctx context.Context, db bun.IDB, kind string) (int64, error) {
	var last []int64
	if err := db.NewRaw("SELECT last FROM offsync_versions WHERE kind = ?", kind).Scan(ctx, &last); err != nil {
		return 0, err
	}
	if len(last) == 0 {
		return 0, nil
	}
	return last[0], nil
}

func (dialect) LockSchema(context.Context, bun.IDB) error { return nil }
func (dialect) ReadTxOptions() *sql.TxOptions             { return &sql.TxOptions{ReadOnly: true} }
func (dialect) WriteTxOptions() *sql.TxOptions            { return nil }
func (dialect) MaxRowsPerStatement() int                  { return 500 }

func init() {
	core.RegisterStore("sqlite", func(ctx context.Context, dsn string, opts map[string]any) (core.Store, error) {
		var o Options
		for k, v := range opts {
			switch k {
			case "synchronous":
				s, ok := v.(string)
				if !ok {
					return nil, fmt.Errorf("%w: sqlite option synchronous must be a string", core.ErrInvalid)
				}
				o.Synchronous = s
			case "busy_timeout":
				switch x := v.(type) {
				case string:
					d, err := time.ParseDuration(x)
					if err != nil {
						return nil, fmt.Errorf("%w: sqlite option busy_timeout: %v", core.ErrInvalid, err)
					}
					o.BusyTimeout = d
				case int:
					o.BusyTimeout = time.Duration(x) * time.Millisecond
				default:
					return nil, fmt.Errorf("%w: sqlite option busy_timeout must be a duration", core.ErrInvalid)
				}
			default:
				return nil, fmt.Errorf("%w: unknown sqlite option %q", core.ErrInvalid, k)
			}
		}
		return Open(ctx, dsn, &o)
	})
}
