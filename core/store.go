package core

import (
	"context"
	"time"
)

// Store is a local replica's or the authority's database. Update runs fn in
// one write transaction (a nested Update or View with the ctx fn was given
// joins it); View runs fn in a read transaction. Register creates the system
// tables (versioned migrations) and the tables of the given Tables, and checks
// them. A store may run fn again after its database reported a transient
// failure that rolled the transaction back (the Postgres store does, on a
// serialization failure): fn keeps its effects inside the transaction.
type Store interface {
	Register(ctx context.Context, tables ...Table) error
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	View(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	Close() error
}

// Tx is a store transaction; a store serves both roles.
type Tx interface {
	ReplicaTx
	AuthorityTx
}

// RowTx reads and writes the rows of registered kinds; both roles use it.
type RowTx interface {
	// Get returns the row kind/id, tombstones included, or ErrNotFound.
	// An unregistered kind is ErrUnknownKind.
	Get(ctx context.Context, kind, id string) (Record, error)
	// Put writes the row as given (insert or replace), keeping local-only
	// columns of an existing row.
	Put(ctx context.Context, rec Record) error
	// List returns rows of a kind ordered by ID, after opts.AfterID.
	List(ctx context.Context, kind string, opts ListOptions) ([]Record, error)
}

// ListOptions pages through the rows of one kind.
type ListOptions struct {
	AfterID        string
	Limit          int // 0 = no limit
	IncludeDeleted bool
}

// ApplyResult counts what ApplyPage did.
type ApplyResult struct {
	Upserts int // live rows written
	Deletes int // tombstones written
	Kept    int // rows left alone because they have ops in the outbox
}

// OpFilter selects outbox entries; the zero value selects every op.
type OpFilter struct {
	Kinds  []string  // empty = all
	States []OpState // empty = all
	Kind   string    // with ID: the ops of one record
	ID     string
	// AfterSeq, when positive, lists only the ops after that place in the
	// outbox (Op.Seq greater): with Limit, the outbox is read a page at a
	// time.
	AfterSeq int64
	Limit    int
}

// OpCount is one line of Pending: how many ops of a kind are in a state.
type OpCount struct {
	Kind  string
	State OpState
	Count int
}

// ConflictEntry is a deferred conflict kept in the conflict inbox until the
// application resolves it.
type ConflictEntry struct {
	OpID          string
	Kind          string
	ID            string
	Type          OpType
	Base          *Record
	Local         *Record
	Server        *Record
	ChangedFields []string
	DetectedAt    time.Time
}

// ConflictFilter selects inbox entries; the zero value selects all.
type ConflictFilter struct {
	Kinds []string
	ID    string
}

// ReplicaTx is the replica's half of a transaction.
type ReplicaTx interface {
	RowTx
	// MarkDeletedLocal sets the local-only deletion mark of a row.
	MarkDeletedLocal(ctx context.Context, kind, id string, at time.Time) error
	// Remove deletes the row outright (a local create undone before any push).
	Remove(ctx context.Context, kind, id string) error
	// ApplyPage upserts pulled records in bulk, skipping every record that has
	// an op in the outbox, and keeping local-only columns.
	ApplyPage(ctx context.Context, kind string, recs []Record) (ApplyResult, error)
	// ClearKind deletes the rows of a kind that have no op in the outbox.
	ClearKind(ctx context.Context, kind string) (int, error)

	// Enqueue appends op to the outbox and sets op.Seq.
	Enqueue(ctx context.Context, op *Op) error
	// Ops lists outbox entries in outbox order.
	Ops(ctx context.Context, f OpFilter) ([]Op, error)
	// GetOp returns one op or ErrNotFound.
	GetOp(ctx context.Context, opID string) (Op, error)
	// UpdateOp rewrites the op stored as oldOpID (op.OpID may be new); its
	// place in the outbox is kept.
	UpdateOp(ctx context.Context, oldOpID string, op Op) error
	// DeleteOp removes an op; a missing op is not an error.
	DeleteOp(ctx context.Context, opID string) error
	// CountOps counts ops by kind and state.
	CountOps(ctx context.Context) ([]OpCount, error)

	// Cursor returns the stored cursor of a kind (zero when none).
	Cursor(ctx context.Context, kind string) (Cursor, error)
	SetCursor(ctx context.Context, kind string, c Cursor) error

	// PutConflict stores or replaces the inbox entry of an op.
	PutConflict(ctx context.Context, c ConflictEntry) error
	Conflicts(ctx context.Context, f ConflictFilter) ([]ConflictEntry, error)
	// DeleteConflict removes an entry; a missing entry is not an error.
	DeleteConflict(ctx context.Context, opID string) error

	// Meta and SetMeta keep small engine state (resync progress). A missing
	// key is ErrNotFound; SetMeta with "" deletes the key.
	Meta(ctx context.Context, key string) (string, error)
	SetMeta(ctx context.Context, key, value string) error
}

// ChangesQuery selects one page of a kind's feed on the authority: rows
// strictly after After in (UpdatedAt, ID) order, within Filter when it is set.
type ChangesQuery struct {
	Kind   string
	After  Cursor
	Filter *Filter
	Limit  int
	// MaxBytes, when positive, lets a store stop reading early: once the
	// records read (each counted as len(ID)+len(Data)+100) exceed it, the
	// record that crossed it is the last one returned (and never before the
	// second one). The authority ends its pages at this budget anyway; the
	// store bounds the memory a page costs.
	MaxBytes int
}

// RecordCost is what a record counts toward ChangesQuery.MaxBytes and an
// authority's page byte budget: its id and data plus 100 bytes for its
// timestamps and field names on the wire.
func RecordCost(r *Record) int { return len(r.ID) + len(r.Data) + 100 }

// Filter limits rows to those whose Field (a business field) has one of Values.
type Filter struct {
	Field  string
	Values []string
}

// IdempotencyRecord is the authority's memory of an applied op. A store
// keeps Record's fields exactly as given, empty ones included: the
// reference authority keeps only what a re-send of the same request cannot
// tell it (it leaves out the kind, the id and an upsert's data when that is
// the op's payload, and rebuilds them from the re-sent op).
type IdempotencyRecord struct {
	Principal   string
	OpID        string
	RequestHash string
	Status      PushStatus
	Record      *Record
	CreatedAt   time.Time
}

// AuthorityTx is the authority's half of a transaction.
type AuthorityTx interface {
	RowTx
	// NextVersion takes the kind's write lock (held until the transaction
	// ends), and returns max(now, last+1µs), recording it as the kind's last
	// version. Versions of a kind thus strictly increase in commit order.
	NextVersion(ctx context.Context, kind string, now time.Time) (time.Time, error)
	// Changes returns one page of a kind's feed.
	Changes(ctx context.Context, q ChangesQuery) ([]Record, error)
	// Idempotent returns the record of (principal, opID) or ErrNotFound.
	Idempotent(ctx context.Context, principal, opID string) (IdempotencyRecord, error)
	PutIdempotent(ctx context.Context, r IdempotencyRecord) error
	// PurgeIdempotent deletes records created before the given time.
	PurgeIdempotent(ctx context.Context, before time.Time) (int64, error)
	// Savepoint runs fn inside a savepoint: when fn fails, only its writes are
	// rolled back and the transaction goes on.
	Savepoint(ctx context.Context, fn func(ctx context.Context) error) error
}

// Notifier is a Store that announces commits to every process sharing the
// database (Postgres LISTEN/NOTIFY). Announce is called inside a write
// transaction and delivered only if it commits; Listen streams the notices of
// every instance until ctx is done.
type Notifier interface {
	Announce(ctx context.Context, n Notice) error
	Listen(ctx context.Context) (<-chan Notice, error)
}

// BunTx is implemented by transactions of bun-based stores: BunTx returns the
// bun.Tx underneath (as any, since core does not import bun), so a user's own
// bun writes share the transaction with an outbox op. The drivers offer a
// typed accessor.
type BunTx interface {
	BunTx() any
}

// BatchTx is an optional Tx of a store that reads and writes many rows, ops
// and idempotency records per statement. The engine (settling push answers)
// and the reference authority (applying a pushed batch) use it when a
// store's transactions implement it, and otherwise do the same work with the
// one-row methods above; the results are the same either way. A store
// implements all of it or none. Each method takes the rows of one kind.
type BatchTx interface {
	// GetMany returns the rows kind/id for the ids that exist (tombstones
	// included), keyed by id. Duplicate ids are allowed.
	GetMany(ctx context.Context, kind string, ids []string) (map[string]Record, error)
	// PutMany writes recs as Put does (insert or replace, keeping local-only
	// columns), in as few statements as it can. When an id appears twice the
	// later record wins.
	PutMany(ctx context.Context, kind string, recs []Record) error
	// SettleMany writes recs as the local rows, like PutMany, and also sets
	// each row's local deletion mark to the record's DeletedAt (zero clears
	// it): afterwards the row is exactly the record.
	SettleMany(ctx context.Context, kind string, recs []Record) error
	// PendingIDs returns which of ids of kind have at least one op in the
	// outbox.
	PendingIDs(ctx context.Context, kind string, ids []string) (map[string]bool, error)
	// DeleteOps removes ops from the outbox; missing ops are not an error.
	DeleteOps(ctx context.Context, opIDs []string) error
	// SetOpState sets the state of the given ops and returns the op ids that
	// exist (and were set); other columns are left alone.
	SetOpState(ctx context.Context, state OpState, opIDs []string) (map[string]bool, error)
	// IdempotentMany returns the idempotency records of (principal, opID)
	// for the opIDs that have one, keyed by op id.
	IdempotentMany(ctx context.Context, principal string, opIDs []string) (map[string]IdempotencyRecord, error)
	// PutIdempotentMany writes records as PutIdempotent does (insert or
	// replace); when a key appears twice the later record wins.
	PutIdempotentMany(ctx context.Context, recs []IdempotencyRecord) error
}
