package bunstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/offsync/offsync/core"
)

// ReadLocker is an optional Dialect. When LockOnRead reports true, a write
// transaction takes a kind's version lock (LockVersion) before its first Get
// of that kind. A database whose write transactions do not exclude each
// other (Postgres at READ COMMITTED) needs it: otherwise two authority
// writers can read the same version of a record, both pass the base check,
// and the later commit silently overwrites the earlier one. The lock is the
// one NextVersion takes anyway, only taken sooner.
type ReadLocker interface {
	LockOnRead() bool
}

// needsKindLocks reports whether the dialect wants per-kind locks taken
// before reads (see ReadLocker).
func (t *Tx) needsKindLocks() bool {
	rl, ok := t.s.d.(ReadLocker)
	return ok && rl.LockOnRead()
}

// lockForRead takes kind's lock in a write transaction when the dialect
// asks for it, once per transaction and kind.
func (t *Tx) lockForRead(ctx context.Context, kind string) error {
	if t.readOnly {
		return nil
	}
	if _, ok := t.locked[kind]; ok || !t.needsKindLocks() {
		return nil
	}
	return t.lockKind(ctx, kind)
}

func (t *Tx) lockKind(ctx context.Context, kind string) error {
	if _, err := t.s.d.LockVersion(ctx, t.tx, kind); err != nil {
		return t.dbErr("lock kind", err)
	}
	if t.locked == nil {
		t.locked = map[string]int{}
	}
	t.locked[kind] = t.depth
	return nil
}

// LockKinds takes the version locks of kinds (each once, in sorted order)
// for the rest of the write transaction, where the dialect needs per-kind
// locks (a ReadLocker; elsewhere the write transaction already excludes
// other writers and this does nothing). An authority calls it first thing in
// a batch's transaction: taken lazily on each kind's first read, the locks
// would follow the order of the batch's ops, and two batches touching two
// kinds in opposite orders could deadlock. Taken outside any savepoint, the
// locks also survive a savepoint's rollback. Kinds already locked by this
// transaction are skipped, so call it before reading any of them.
func (t *Tx) LockKinds(ctx context.Context, kinds []string) error {
	if t.readOnly {
		return fmt.Errorf("%w: LockKinds in a read transaction", core.ErrInvalid)
	}
	sorted := slices.Clone(kinds)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	for _, k := range sorted {
		if _, err := t.s.kind(k); err != nil {
			return err
		}
	}
	if !t.needsKindLocks() {
		return nil
	}
	for _, k := range sorted {
		if _, ok := t.locked[k]; ok {
			continue
		}
		if err := t.lockKind(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// forgetLocks drops the kinds locked inside a savepoint that was rolled
// back (at depth or deeper): Postgres releases the row locks a rolled-back
// subtransaction took, so the next read must take them again.
func (t *Tx) forgetLocks(depth int) {
	for k, d := range t.locked {
		if d >= depth {
			delete(t.locked, k)
			// Every version of k stamped by this transaction was stamped
			// under that lock, so inside the savepoint: all rolled back.
			delete(t.vlast, k)
		}
	}
}

// keepLocks hands the locks taken inside a released savepoint (at depth or
// deeper) to the enclosing level: a release keeps them.
func (t *Tx) keepLocks(depth int) {
	for k, d := range t.locked {
		if d >= depth {
			t.locked[k] = depth - 1
		}
	}
}

// TxFrom returns the transaction of this store carried by ctx (the ctx an
// Update or View gave its fn), or nil.
func (s *Store) TxFrom(ctx context.Context) *Tx { return s.txFrom(ctx) }

// ReadOnly reports whether t is a View's transaction.
func (t *Tx) ReadOnly() bool { return t.readOnly }
