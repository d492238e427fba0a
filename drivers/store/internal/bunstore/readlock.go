package bunstore

import "context"

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

// lockForRead takes kind's lock in a write transaction when the dialect
// asks for it, once per transaction and kind.
func (t *Tx) lockForRead(ctx context.Context, kind string) error {
	if t.readOnly || t.locked[kind] {
		return nil
	}
	rl, ok := t.s.d.(ReadLocker)
	if !ok || !rl.LockOnRead() {
		return nil
	}
	if _, err := t.s.d.LockVersion(ctx, t.tx, kind); err != nil {
		return t.dbErr("lock kind", err)
	}
	if t.locked == nil {
		t.locked = map[string]bool{}
	}
	t.locked[kind] = true
	return nil
}

// TxFrom returns the transaction of this store carried by ctx (the ctx an
// Update or View gave its fn), or nil.
func (s *Store) TxFrom(ctx context.Context) *Tx { return s.txFrom(ctx) }

// ReadOnly reports whether t is a View's transaction.
func (t *Tx) ReadOnly() bool { return t.readOnly }
