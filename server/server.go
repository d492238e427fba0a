package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/offsync/offsync/core"
)

// Defaults of Options.
const (
	DefaultIdempotencyRetention = 30 * 24 * time.Hour
	DefaultMaxBatch             = 1000
	DefaultMaxLimit             = 1000
	DefaultPageLimit            = 500
	DefaultMaxDepth             = core.DefaultMaxDepth
	DefaultMaxRecordBytes       = 1 << 20
	DefaultMaxPageBytes         = 4 << 20
	DefaultMaxDynamicKinds      = 256
)

// purgeEvery is how often a push may purge old idempotency records.
const purgeEvery = time.Hour

// Options configure a Service; nil takes every default. A Service serves
// the kinds of Tables and, when DynamicKinds is set, the kinds matching it.
type Options struct {
	// Tables are the kinds served; they are registered on the store by New.
	Tables []core.Table
	// DynamicKinds, when set, serves any kind matching it as a document
	// table, registered on the store the first time it is used.
	DynamicKinds *regexp.Regexp
	// Clock stamps versions and ages idempotency records; SystemClock when nil.
	Clock core.Clock
	// Validate is the business-rule hook, called for every op that passed
	// the base and scope checks (forced ops included) with the record as it
	// stands (nil when missing). An error wrapping core.ErrRejected refuses
	// the op for good; any other error makes the op a StatusRetry.
	Validate func(ctx context.Context, p core.Principal, op core.Op, current *core.Record) error
	// Authenticate turns a bearer token into a principal. When nil every
	// caller is the anonymous principal (ID ""); when set, calls without a
	// principal in their context are refused with core.ErrUnauthorized.
	Authenticate func(ctx context.Context, token string) (core.Principal, error)
	// Scope limits what a principal sees and writes of a kind: rows whose
	// Field holds one of Values. A nil filter means the whole kind. An error
	// wrapping core.ErrForbidden refuses access to the kind. New rows get
	// Field = Values[0], whatever the client sent.
	Scope func(ctx context.Context, p core.Principal, kind string) (*core.Filter, error)
	// IdempotencyRetention is how long the answer to an applied op is kept
	// (default 30 days).
	IdempotencyRetention time.Duration
	// MaxBatch caps the ops of one Push (default 1000).
	MaxBatch int
	// MaxLimit caps the rows of one page (default 1000).
	MaxLimit int
	// DefaultLimit is the page size when a pull asks for none (default 500).
	DefaultLimit int
	// MaxDepth is how deeply an upsert's payload may nest objects and
	// arrays, the payload object being level 1 (default 64,
	// core.DefaultMaxDepth). A deeper payload is refused for good (the op is
	// Rejected, permanent), whatever the transport.
	MaxDepth int
	// MaxRecordBytes caps the size of an upsert's payload, the business
	// fields as JSON (default 1 MiB). A larger payload is refused for good.
	MaxRecordBytes int
	// MaxPageBytes is the byte budget of one pull page (default 4 MiB): a
	// page ends at the row limit or once its records reach this budget,
	// whichever comes first, and the next page continues from there. Each
	// record counts as its id and payload plus a fixed 100 bytes; a page
	// always holds at least one record.
	MaxPageBytes int
	// MaxDynamicKinds caps how many kinds matching DynamicKinds one Service
	// serves (default 256): a write that would create a new kind beyond it
	// is refused (core.ErrUnknownKind). Kinds that already have rows in the
	// store are still served. Reads never create a kind: a pull of a
	// dynamic kind that has no rows is an empty page, a fetch is
	// core.ErrNotFound, and a subscription waits for its first write.
	MaxDynamicKinds int
	// TokenSecret signs page tokens; a random secret per Service when nil
	// (tokens then do not survive a restart or cross instances).
	TokenSecret []byte
	// TombstoneRetention is how long a tombstone is kept: older ones are
	// collected in the background (see Collect), and a pull whose cursor is
	// older than what was collected is answered core.ErrResetRequired. Zero
	// keeps tombstones forever; the server config's default is
	// DefaultTombstoneRetention.
	TombstoneRetention time.Duration
	// TombstoneBatch caps the tombstones one collection transaction removes
	// (default 1000): a push of the kind waits for at most one batch.
	TombstoneBatch int
	// Logger receives store failures; discarded when nil.
	Logger *slog.Logger
	// Tracer, when set, gets a span for each call the Service answers
	// (core.SpanServerPush, SpanServerPull, SpanServerGet,
	// SpanServerSubscribe), a child of the caller's span when the server
	// half carried its trace context (package tracing). Nil costs nothing.
	Tracer core.Tracer
	// Hooks are for fault injection and tests; nil in production.
	Hooks *Hooks
}

// Hooks let tests (of this package and of stores) reach into a Service's
// write path. They are for fault injection and tests only: production code
// leaves Options.Hooks nil.
type Hooks struct {
	// AfterStamp runs right after an op's version is stamped: inside the
	// write transaction with the kind's lock held (locked true) or, with
	// StampBeforeLock, before the transaction (locked false). Blocking in it
	// holds a stamped writer open.
	AfterStamp func(ctx context.Context, kind, id string, version time.Time, locked bool)
	// StampBeforeLock switches to a deliberately broken variant that reads
	// the version from the clock before the transaction and the kind's lock
	// (so a writer that stamped earlier may commit later, behind a cursor
	// already served). It exists only as the negative control of the
	// tests of guarantee G12 (docs/guarantees.md), which must catch it.
	StampBeforeLock bool
	// AfterCollect runs after each collection transaction commits, with the
	// kind and the tombstones it removed.
	AfterCollect func(kind string, removed int)
}

// Service is the reference authority over a core.Store. It is safe for
// concurrent use, holds no state a second instance over the same database
// would need, and does not own the store: Close leaves it open.
type Service struct {
	store  core.Store
	opts   Options
	clock  core.Clock
	log    *slog.Logger
	secret []byte

	kindMu  sync.Mutex
	kinds   map[string]bool
	dynamic int                   // kinds registered through DynamicKinds
	tables  map[string]core.Table // Options.Tables by kind (dynamic kinds are documents)

	purgeMu   sync.Mutex
	lastPurge time.Time

	subMu  sync.RWMutex
	subs   map[*subscriber]struct{}
	closed bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	notifier core.Notifier

	// test hooks (Options.Hooks, or export_test.go)
	afterStamp      func(ctx context.Context, kind, id string, version time.Time, locked bool)
	stampBeforeLock bool
	// bulkStaleRows breaks the bulk push on purpose (export_test.go): a
	// later op of a batch does not see what an earlier one wrote. It is the
	// negative control of the bulk/op-by-op equivalence tests.
	bulkStaleRows bool
	collector     collector
	stats         *stats
	stampMu       sync.Mutex
	lastStamp     map[string]time.Time
}

var (
	_ core.Transport     = (*Service)(nil)
	_ core.Getter        = (*Service)(nil)
	_ core.PageStreamer  = (*Service)(nil)
	_ core.Subscriber    = (*Service)(nil)
	_ core.Batcher       = (*Service)(nil)
	_ core.Authenticator = (*Service)(nil)
)

// New returns an authority over store, registering opts.Tables on it. When
// the store is a core.Notifier, change notices travel through it, so that
// every Service sharing the database hears every commit.
func New(ctx context.Context, store core.Store, opts *Options) (*Service, error) {
	if store == nil {
		return nil, fmt.Errorf("server: %w: nil store", core.ErrInvalid)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Clock == nil {
		o.Clock = core.SystemClock
	}
	if o.IdempotencyRetention == 0 {
		o.IdempotencyRetention = DefaultIdempotencyRetention
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxLimit == 0 {
		o.MaxLimit = DefaultMaxLimit
	}
	if o.DefaultLimit == 0 {
		o.DefaultLimit = DefaultPageLimit
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.MaxPageBytes == 0 {
		o.MaxPageBytes = DefaultMaxPageBytes
	}
	if o.MaxDynamicKinds == 0 {
		o.MaxDynamicKinds = DefaultMaxDynamicKinds
	}
	if o.MaxDepth < 0 || o.MaxRecordBytes < 0 || o.MaxPageBytes < 0 || o.MaxDynamicKinds < 0 {
		return nil, fmt.Errorf("server: %w: negative limit", core.ErrInvalid)
	}
	if err := collectDefaults(&o); err != nil {
		return nil, err
	}
	if o.IdempotencyRetention < 0 || o.MaxBatch < 0 || o.MaxLimit < 0 || o.DefaultLimit < 0 {
		return nil, fmt.Errorf("server: %w: negative option", core.ErrInvalid)
	}
	if o.DefaultLimit > o.MaxLimit {
		o.DefaultLimit = o.MaxLimit
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	secret := o.TokenSecret
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("server: token secret: %w", err)
		}
	}
	s := &Service{
		store:     store,
		opts:      o,
		clock:     o.Clock,
		log:       log,
		secret:    secret,
		kinds:     map[string]bool{},
		tables:    map[string]core.Table{},
		subs:      map[*subscriber]struct{}{},
		lastStamp: map[string]time.Time{},
		stats:     newStats(),
	}
	if o.Hooks != nil {
		s.afterStamp = o.Hooks.AfterStamp
		s.stampBeforeLock = o.Hooks.StampBeforeLock
	}
	for _, t := range o.Tables {
		if t == nil {
			return nil, fmt.Errorf("server: %w: nil table", core.ErrInvalid)
		}
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("server: table %q: %w", t.Kind(), err)
		}
		if s.kinds[t.Kind()] {
			return nil, fmt.Errorf("server: %w: kind %q given twice", core.ErrInvalid, t.Kind())
		}
		s.kinds[t.Kind()] = true
		s.tables[t.Kind()] = t
	}
	if len(o.Tables) > 0 {
		if err := store.Register(ctx, o.Tables...); err != nil {
			return nil, fmt.Errorf("server: register tables: %w", err)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if n, ok := store.(core.Notifier); ok {
		ch, err := n.Listen(s.ctx)
		if err != nil {
			s.cancel()
			return nil, fmt.Errorf("server: listen for change notices: %w", err)
		}
		s.notifier = n
		s.wg.Add(1)
		go s.listen(ch)
	}
	s.startCollector()
	return s, nil
}

// Close stops the service: subscriptions end and later calls fail with
// core.ErrClosed. The store stays open.
func (s *Service) Close() error {
	s.subMu.Lock()
	if s.closed {
		s.subMu.Unlock()
		return nil
	}
	s.closed = true
	s.subMu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Service) checkOpen() error {
	s.subMu.RLock()
	defer s.subMu.RUnlock()
	if s.closed {
		return fmt.Errorf("server: %w", core.ErrClosed)
	}
	return nil
}

// InputLimits are a Service's limits on what it is sent, defaults applied.
// A transport's server half may check a request against them before calling
// the Service, to answer in its own terms (REST: 400, 413); the Service
// checks every op again whatever the transport did.
type InputLimits struct {
	MaxDepth        int // Options.MaxDepth
	MaxRecordBytes  int // Options.MaxRecordBytes
	MaxPageBytes    int // Options.MaxPageBytes
	MaxDynamicKinds int // Options.MaxDynamicKinds
}

// InputLimits returns the Service's input limits.
func (s *Service) InputLimits() InputLimits {
	return InputLimits{MaxDepth: s.opts.MaxDepth, MaxRecordBytes: s.opts.MaxRecordBytes,
		MaxPageBytes: s.opts.MaxPageBytes, MaxDynamicKinds: s.opts.MaxDynamicKinds}
}

// BatchLimits implements core.Batcher.
func (s *Service) BatchLimits(ctx context.Context) (core.BatchLimits, error) {
	return core.BatchLimits{MaxOps: s.opts.MaxBatch, MaxLimit: s.opts.MaxLimit}, nil
}

// Authenticate implements core.Authenticator with Options.Authenticate; with
// no hook every token (or none) is the anonymous principal.
func (s *Service) Authenticate(ctx context.Context, token string) (core.Principal, error) {
	if s.opts.Authenticate == nil {
		return core.Principal{}, nil
	}
	p, err := s.opts.Authenticate(ctx, token)
	if err != nil {
		if errors.Is(err, core.ErrUnauthorized) || errors.Is(err, core.ErrUnavailable) {
			return core.Principal{}, err
		}
		return core.Principal{}, fmt.Errorf("server: authenticate: %w: %v", core.ErrUnauthorized, err)
	}
	return p, nil
}

// principal returns the caller of ctx.
func (s *Service) principal(ctx context.Context) (core.Principal, error) {
	if p, ok := core.PrincipalFrom(ctx); ok {
		return p, nil
	}
	if s.opts.Authenticate != nil {
		return core.Principal{}, fmt.Errorf("server: %w: no principal", core.ErrUnauthorized)
	}
	return core.Principal{}, nil
}

// checkKindName refuses a kind name no store could key (wrapping
// core.ErrInvalid): empty, longer than core.MaxKindBytes, NUL or invalid
// UTF-8. Other names are served or unknown.
func checkKindName(kind string) error {
	switch {
	case kind == "":
		return fmt.Errorf("server: %w: empty kind", core.ErrInvalid)
	case len(kind) > core.MaxKindBytes:
		return fmt.Errorf("server: %w: a kind has at most %d bytes, got %d", core.ErrInvalid, core.MaxKindBytes, len(kind))
	case strings.IndexByte(kind, 0) >= 0 || !utf8.ValidString(kind):
		return fmt.Errorf("server: %w: a kind must be UTF-8 without NUL", core.ErrInvalid)
	}
	return nil
}

// kindProber is implemented by store transactions that can tell whether a
// document kind has rows without it being registered (the bun stores), so
// that a read of a dynamic kind never registers it.
type kindProber interface {
	HasDocuments(ctx context.Context, kind string) (bool, error)
}

// ensureKind checks that kind is served, registering a dynamic kind on the
// first write (create) or, for a read, when the store already holds rows of
// it. served is false for a dynamic kind a read found no rows of: the read
// answers as for an empty kind, and nothing is registered. A new dynamic
// kind beyond Options.MaxDynamicKinds is refused (core.ErrUnknownKind). It
// must not run inside a store transaction.
func (s *Service) ensureKind(ctx context.Context, kind string, create bool) (served bool, err error) {
	if err := checkKindName(kind); err != nil {
		return false, err
	}
	s.kindMu.Lock()
	served = s.kinds[kind]
	s.kindMu.Unlock()
	if served {
		return true, nil
	}
	if s.opts.DynamicKinds == nil || !s.opts.DynamicKinds.MatchString(kind) {
		return false, fmt.Errorf("server: %w: %q", core.ErrUnknownKind, kind)
	}
	if err := core.CheckKind(kind); err != nil {
		return false, fmt.Errorf("server: %w: %q: %v", core.ErrUnknownKind, kind, err)
	}
	exists, known := false, false
	err = s.store.View(ctx, func(ctx context.Context, tx core.Tx) error {
		p, ok := tx.(kindProber)
		if !ok {
			return nil
		}
		known = true
		var perr error
		exists, perr = p.HasDocuments(ctx, kind)
		return perr
	})
	if err != nil {
		return false, storeErr("kind "+kind, err)
	}
	// The probe ran without the lock, so that reads of unknown names never
	// hold up the reads of served kinds; registering holds it.
	s.kindMu.Lock()
	defer s.kindMu.Unlock()
	if s.kinds[kind] {
		return true, nil
	}
	// A kind with rows is served whatever the cap; a read of one without
	// rows registers nothing. Without a prober a read registers too
	// (within the cap), since only the store knows whether it has rows.
	switch {
	case exists:
	case known && !create:
		return false, nil
	case s.dynamic >= s.opts.MaxDynamicKinds:
		return false, fmt.Errorf("server: %w: %q: this server serves at most %d dynamic kinds", core.ErrUnknownKind, kind, s.opts.MaxDynamicKinds)
	}
	if err := s.store.Register(ctx, core.Documents(kind)); err != nil {
		return false, fmt.Errorf("server: register kind %q: %w: %v", kind, core.ErrUnavailable, err)
	}
	s.kinds[kind] = true
	s.dynamic++
	return true, nil
}

// scope returns the caller's filter for kind; an empty Values filter means
// nothing is visible.
func (s *Service) scope(ctx context.Context, p core.Principal, kind string) (*core.Filter, error) {
	if s.opts.Scope == nil {
		return nil, nil
	}
	f, err := s.opts.Scope(ctx, p, kind)
	if err != nil {
		switch {
		case errors.Is(err, core.ErrForbidden), errors.Is(err, core.ErrUnauthorized),
			errors.Is(err, core.ErrUnavailable), errors.Is(err, core.ErrNotFound),
			errors.Is(err, core.ErrRejected):
			return nil, fmt.Errorf("server: scope of %q: %w", kind, err)
		}
		return nil, fmt.Errorf("server: scope of %q: %w: %v", kind, core.ErrUnavailable, err)
	}
	if f != nil && f.Field == "" {
		return nil, fmt.Errorf("server: scope of %q: %w: filter without a field", kind, core.ErrInvalid)
	}
	return f, nil
}

// storeErr wraps a store failure of a whole call as retryable, keeping the
// store's own error in the chain.
func storeErr(what string, err error) error {
	if errors.Is(err, core.ErrUnavailable) {
		return fmt.Errorf("server: %s: %w", what, err)
	}
	return fmt.Errorf("server: %s: %w: %w", what, core.ErrUnavailable, err)
}
