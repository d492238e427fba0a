package core

import (
	"context"
	"time"
)

// TombstoneTx is an optional AuthorityTx of a store that can collect
// tombstones: the authority removes deleted rows older than its retention,
// a bounded batch per write transaction, and remembers per kind the newest
// version it removed (the kind's horizon). A cursor older than the horizon
// may have missed a delete, so the authority answers it ErrResetRequired.
// The server finds it by type assertion; a store implements all of it or
// none.
type TombstoneTx interface {
	// CollectTombstones takes the kind's write lock (as NextVersion does),
	// removes up to limit tombstones of kind whose UpdatedAt is before
	// before, oldest first, and moves the kind's horizon to the newest
	// UpdatedAt it removed, in the caller's write transaction. It returns
	// how many it removed and the horizon after it (zero when none was ever
	// collected).
	CollectTombstones(ctx context.Context, kind string, before time.Time, limit int) (int, time.Time, error)
	// Horizon returns the kind's horizon: the newest UpdatedAt of a
	// tombstone collected, zero when none was.
	Horizon(ctx context.Context, kind string) (time.Time, error)
	// OldestTombstone returns the UpdatedAt of the oldest tombstone of kind,
	// zero when it has none; the authority reads it first, in a read
	// transaction, to take no write lock when there is nothing to collect.
	OldestTombstone(ctx context.Context, kind string) (time.Time, error)
	// CountTombstones counts the tombstones of kind the store holds.
	CountTombstones(ctx context.Context, kind string) (int64, error)
}
