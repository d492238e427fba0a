package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure an Engine. The zero value of each field is a sensible
// default, written next to it.
type Options struct {
	// Tables are the synced kinds, in pull order (a referenced kind first).
	Tables []Table
	// Conflicts chooses a strategy per kind (default AutoPreserve).
	Conflicts Conflicts
	// Clock is the source of time (default SystemClock).
	Clock Clock
	// Rand is the source of backoff jitter (default: seeded randomly).
	Rand *mrand.Rand
	// PageSize is the pull page size asked of the transport (default 500).
	PageSize int
	// BatchSize is the most ops in one Push (default 500, lowered to the
	// transport's advertised limit).
	BatchSize int
	// MaxAttempts is the attempt budget of an op: failures of the op itself
	// (a non-permanent rejection) past it send the op to the dead letters
	// (default 8). Being offline or refused by auth never counts.
	MaxAttempts int
	// Backoff paces the retries of failing ops.
	Backoff Backoff
	// ResyncInterval schedules a full pull of every kind from the start when
	// the last one is older than this (0 = never).
	ResyncInterval time.Duration
	// Logger receives debug logs (default: discarded).
	Logger *slog.Logger
	// Tracer, when set, gets a span for each sync, push batch, pull page
	// and resolution (SpanSync, SpanPush, SpanPull, SpanResolve); the
	// transports carry it to the authority. Nil costs nothing.
	Tracer Tracer
	// Checkpoint, when set, is called at the engine's named crash points
	// ("after_local_commit", "after_answer", "mid_page_apply"), for fault
	// injection in tests.
	Checkpoint func(point string)
	// Closers are closed by Close, last first, once the engine has stopped:
	// what the engine was composed from and should not outlive it (the store
	// and plugin resolvers offsync.Open opened). Their errors are Close's.
	Closers []io.Closer
}

// Backoff is capped exponential backoff with jitter.
type Backoff struct {
	Initial    time.Duration // default 1s
	Max        time.Duration // default 5m
	Multiplier float64       // default 2
	Jitter     float64       // fraction of the delay randomized, 0..1 (default 0.2)
}

// Delay returns the delay before retry number n (1-based).
func (b Backoff) Delay(n int, r *mrand.Rand) time.Duration {
	d := float64(b.Initial)
	for i := 1; i < n && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	if d > float64(b.Max) {
		d = float64(b.Max)
	}
	if b.Jitter > 0 && r != nil {
		d = d * (1 - b.Jitter + 2*b.Jitter*r.Float64())
		if d > float64(b.Max) {
			d = float64(b.Max)
		}
	}
	return time.Duration(d)
}

func (o *Options) withDefaults() {
	if o.Clock == nil {
		o.Clock = SystemClock
	}
	if o.Rand == nil {
		var seed [16]byte
		_, _ = rand.Read(seed[:])
		o.Rand = mrand.New(mrand.NewPCG(uint64(seed[0])<<56|uint64(seed[1])<<48|uint64(seed[2])<<40|uint64(seed[3]), uint64(seed[8])<<8|uint64(seed[9])))
	}
	if o.PageSize <= 0 {
		o.PageSize = 500
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.Backoff.Initial <= 0 {
		o.Backoff.Initial = time.Second
	}
	if o.Backoff.Max <= 0 {
		o.Backoff.Max = 5 * time.Minute
	}
	if o.Backoff.Multiplier < 1 {
		o.Backoff.Multiplier = 2
	}
	if o.Backoff.Jitter == 0 {
		o.Backoff.Jitter = 0.2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Engine is a replica: it owns the outbox of a local Store and syncs it with
// an authority through a Transport. It is safe for concurrent use.
type Engine struct {
	store  Store
	tr     Transport
	opts   Options
	tables map[string]Table
	order  []string

	events   hub
	counters counters      // what Stats reports, counted from the events
	wrote    chan struct{} // a local write committed (for PushOnWrite)
	writes   atomic.Uint64 // local writes committed, counted (a push pass looks again after one)
	done     chan struct{} // closed by Close

	mu        sync.Mutex
	kindLocks map[string]*sync.Mutex
	closed    bool
	running   sync.WaitGroup
	randMu    sync.Mutex
}

// NewEngine checks the tables, registers them with the store (creating the
// system tables) and returns an engine. opts may be nil only when there is
// nothing to sync, so it usually is not.
func NewEngine(ctx context.Context, store Store, tr Transport, opts *Options) (*Engine, error) {
	if store == nil || tr == nil {
		return nil, fmt.Errorf("%w: NewEngine needs a store and a transport", ErrInvalid)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	o.withDefaults()
	e := &Engine{
		store:     store,
		tr:        tr,
		opts:      o,
		tables:    map[string]Table{},
		wrote:     make(chan struct{}, 1),
		done:      make(chan struct{}),
		kindLocks: map[string]*sync.Mutex{},
	}
	var errs []error
	for _, t := range o.Tables {
		if t == nil {
			errs = append(errs, fmt.Errorf("%w: nil table", ErrInvalid))
			continue
		}
		if err := t.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := e.tables[t.Kind()]; dup {
			errs = append(errs, fmt.Errorf("%w: kind %q listed twice", ErrInvalid, t.Kind()))
			continue
		}
		e.tables[t.Kind()] = t
		e.order = append(e.order, t.Kind())
		e.kindLocks[t.Kind()] = &sync.Mutex{}
	}
	for k := range o.Conflicts.Kinds {
		if _, ok := e.tables[k]; !ok {
			errs = append(errs, fmt.Errorf("%w: conflict strategy for %q, which is not a table", ErrUnknownKind, k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := store.Register(ctx, o.Tables...); err != nil {
		return nil, fmt.Errorf("offsync: register tables: %w", err)
	}
	return e, nil
}

// Store returns the engine's store.
func (e *Engine) Store() Store { return e.store }

// Transport returns the engine's transport.
func (e *Engine) Transport() Transport { return e.tr }

// Kinds returns the synced kinds in pull order.
func (e *Engine) Kinds() []string { return slices.Clone(e.order) }

// Table returns the table of a kind.
func (e *Engine) Table(kind string) (Table, error) {
	t, ok := e.tables[kind]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKind, kind)
	}
	return t, nil
}

// Subscribe returns a subscription to the engine's events with its own
// buffer of the given size.
func (e *Engine) Subscribe(buffer int) *Subscription { return e.events.subscribe(buffer) }

func (e *Engine) emit(ev Event) {
	e.counters.count(ev)
	e.events.emit(ev)
}

func (e *Engine) now() time.Time { return Micro(e.opts.Clock.Now()) }

func (e *Engine) at() At { return At{e.opts.Clock.Now()} }

func (e *Engine) checkpoint(p string) {
	if e.opts.Checkpoint != nil {
		e.opts.Checkpoint(p)
	}
}

func (e *Engine) backoff(n int) time.Duration {
	e.randMu.Lock()
	defer e.randMu.Unlock()
	return e.opts.Backoff.Delay(n, e.opts.Rand)
}

// begin registers a running call; it fails once the engine is closed.
func (e *Engine) begin() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	e.running.Add(1)
	return nil
}

// Close stops the engine: new calls fail with ErrClosed, running syncs are
// waited for, event subscriptions are closed, then Options.Closers. The
// store is the caller's to close (unless it is among the Closers).
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	close(e.done)
	e.mu.Unlock()
	e.running.Wait()
	e.events.closeAll()
	var errs []error
	for i := len(e.opts.Closers) - 1; i >= 0; i-- {
		if c := e.opts.Closers[i]; c != nil {
			errs = append(errs, c.Close())
		}
	}
	return errors.Join(errs...)
}

// lockKinds takes the single-flight locks of kinds in sorted order and
// returns the function that releases them.
func (e *Engine) lockKinds(kinds []string) func() {
	sorted := slices.Clone(kinds)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	for _, k := range sorted {
		e.kindLocks[k].Lock()
	}
	return func() {
		for i := len(sorted) - 1; i >= 0; i-- {
			e.kindLocks[sorted[i]].Unlock()
		}
	}
}

func (e *Engine) checkKinds(kinds []string) error {
	for _, k := range kinds {
		if _, ok := e.tables[k]; !ok {
			return fmt.Errorf("%w: %q", ErrUnknownKind, k)
		}
	}
	return nil
}

func newID() string { return NewOpID() }

// NewOpID returns an id as the engine makes them for ops and transactions:
// 32 hex digits, the first 12 the Unix time in milliseconds, the other 20
// random (80 bits). Ids made later sort later (to the millisecond), so the
// indexes keyed by op id — the outbox's, the authority's idempotency
// records — take new ids at their end instead of at random places; two ids
// of one millisecond still differ in 80 random bits.
func NewOpID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

type txIDKey struct{}

// Update runs fn in one store transaction whose outbox ops share a TxID;
// Writer calls with the ...Tx variants inside fn join it.
func (e *Engine) Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error {
	if ctx.Value(txIDKey{}) == nil {
		ctx = context.WithValue(ctx, txIDKey{}, newID())
	}
	err := e.store.Update(ctx, fn)
	if err == nil {
		e.notifyWrite()
	}
	return err
}

func txIDFrom(ctx context.Context) string {
	if id, ok := ctx.Value(txIDKey{}).(string); ok {
		return id
	}
	return newID()
}

func (e *Engine) notifyWrite() {
	e.writes.Add(1)
	select {
	case e.wrote <- struct{}{}:
	default:
	}
}

// Get returns the local row of kind/id as a record (tombstones included).
func (e *Engine) Get(ctx context.Context, kind, id string) (Record, error) {
	if err := e.checkKinds([]string{kind}); err != nil {
		return Record{}, err
	}
	var rec Record
	err := e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		rec, err = tx.Get(ctx, kind, id)
		return err
	})
	return rec, err
}

// List returns local rows of a kind ordered by ID.
func (e *Engine) List(ctx context.Context, kind string, opts ListOptions) ([]Record, error) {
	if err := e.checkKinds([]string{kind}); err != nil {
		return nil, err
	}
	var recs []Record
	err := e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		recs, err = tx.List(ctx, kind, opts)
		return err
	})
	return recs, err
}

// Pending counts the outbox by kind and state.
func (e *Engine) Pending(ctx context.Context) ([]OpCount, error) {
	var out []OpCount
	err := e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.CountOps(ctx)
		return err
	})
	return out, err
}

// Cursor returns the stored pull cursor of a kind.
func (e *Engine) Cursor(ctx context.Context, kind string) (Cursor, error) {
	var c Cursor
	err := e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		c, err = tx.Cursor(ctx, kind)
		return err
	})
	return c, err
}
