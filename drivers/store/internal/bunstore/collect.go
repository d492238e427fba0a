package bunstore

import (
	"context"
	"fmt"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun"
)

var _ core.TombstoneTx = (*Tx)(nil)

// CollectTombstones implements core.TombstoneTx. It reads the oldest
// tombstones of kind after the kind's horizon (no tombstone older than the
// horizon remains: a delete always gets a newer version), removes them and
// writes the new horizon, all in t. The kind's write lock is taken first
// where the dialect needs one (SQLite's write transaction excludes other
// writers already), so a batch waits for pushes of the kind and pushes wait
// for at most one batch.
func (t *Tx) CollectTombstones(ctx context.Context, kind string, before time.Time, limit int) (int, time.Time, error) {
	if t.readOnly {
		return 0, time.Time{}, fmt.Errorf("%w: CollectTombstones in a read transaction", core.ErrInvalid)
	}
	if limit <= 0 {
		return 0, time.Time{}, fmt.Errorf("%w: collection batch of %d rows", core.ErrInvalid, limit)
	}
	k, err := t.s.kind(kind)
	if err != nil {
		return 0, time.Time{}, err
	}
	if err := t.LockKinds(ctx, []string{kind}); err != nil {
		return 0, time.Time{}, err
	}
	h, err := t.horizon(ctx, kind)
	if err != nil {
		return 0, time.Time{}, err
	}
	var found []struct {
		ID        string `bun:"id"`
		UpdatedAt int64  `bun:"updated_at"`
	}
	if k.typed {
		err = t.tx.NewRaw(`SELECT id, updated_at FROM ? WHERE deleted_at IS NOT NULL
			AND updated_at > ? AND updated_at < ? ORDER BY updated_at, id LIMIT ?`, k.ident, h, micro(before), limit).Scan(ctx, &found)
	} else {
		err = t.tx.NewRaw(`SELECT id, updated_at FROM offsync_documents WHERE kind = ?
			AND deleted_at IS NOT NULL AND updated_at > ? AND updated_at < ? ORDER BY updated_at, id LIMIT ?`,
			kind, h, micro(before), limit).Scan(ctx, &found)
	}
	if err != nil {
		return 0, time.Time{}, t.dbErr("collect tombstones", err)
	}
	ids := make([]string, len(found))
	newest := h
	for i, f := range found {
		ids[i] = f.ID
		newest = max(newest, f.UpdatedAt)
	}
	if len(ids) == 0 {
		return 0, fromMicro(h), nil
	}
	const chunk = 500 // bound parameters per statement
	for i := 0; i < len(ids); i += chunk {
		part := ids[i:min(i+chunk, len(ids))]
		if k.typed {
			_, err = t.tx.NewRaw(`DELETE FROM ? WHERE deleted_at IS NOT NULL AND id IN (?)`, k.ident, bun.In(part)).Exec(ctx)
		} else {
			_, err = t.tx.NewRaw(`DELETE FROM offsync_documents WHERE kind = ? AND deleted_at IS NOT NULL AND id IN (?)`,
				kind, bun.In(part)).Exec(ctx)
		}
		if err != nil {
			return 0, time.Time{}, t.dbErr("collect tombstones", err)
		}
	}
	if _, err := t.tx.NewRaw(`INSERT INTO offsync_horizons (kind, horizon) VALUES (?, ?)
		ON CONFLICT (kind) DO UPDATE SET horizon = EXCLUDED.horizon`, kind, newest).Exec(ctx); err != nil {
		return 0, time.Time{}, t.dbErr("record horizon", err)
	}
	return len(ids), fromMicro(newest), nil
}

// Horizon implements core.TombstoneTx.
func (t *Tx) Horizon(ctx context.Context, kind string) (time.Time, error) {
	h, err := t.horizon(ctx, kind)
	return fromMicro(h), err
}

func (t *Tx) horizon(ctx context.Context, kind string) (int64, error) {
	var hs []int64
	if err := t.tx.NewRaw(`SELECT horizon FROM offsync_horizons WHERE kind = ?`, kind).Scan(ctx, &hs); err != nil {
		return 0, t.dbErr("read horizon", err)
	}
	if len(hs) == 0 {
		return 0, nil
	}
	return hs[0], nil
}

// OldestTombstone implements core.TombstoneTx. It reads the kind's feed
// from its horizon (no older tombstone remains).
func (t *Tx) OldestTombstone(ctx context.Context, kind string) (time.Time, error) {
	k, err := t.s.kind(kind)
	if err != nil {
		return time.Time{}, err
	}
	h, err := t.horizon(ctx, kind)
	if err != nil {
		return time.Time{}, err
	}
	var us []int64
	if k.typed {
		err = t.tx.NewRaw(`SELECT updated_at FROM ? WHERE deleted_at IS NOT NULL AND updated_at > ?
			ORDER BY updated_at LIMIT 1`, k.ident, h).Scan(ctx, &us)
	} else {
		err = t.tx.NewRaw(`SELECT updated_at FROM offsync_documents WHERE kind = ? AND deleted_at IS NOT NULL
			AND updated_at > ? ORDER BY updated_at LIMIT 1`, kind, h).Scan(ctx, &us)
	}
	if err != nil {
		return time.Time{}, t.dbErr("oldest tombstone", err)
	}
	if len(us) == 0 {
		return time.Time{}, nil
	}
	return fromMicro(us[0]), nil
}

// CountTombstones implements core.TombstoneTx.
func (t *Tx) CountTombstones(ctx context.Context, kind string) (int64, error) {
	k, err := t.s.kind(kind)
	if err != nil {
		return 0, err
	}
	var n int64
	if k.typed {
		err = t.tx.NewRaw(`SELECT count(*) FROM ? WHERE deleted_at IS NOT NULL`, k.ident).Scan(ctx, &n)
	} else {
		err = t.tx.NewRaw(`SELECT count(*) FROM offsync_documents WHERE kind = ? AND deleted_at IS NOT NULL`, kind).Scan(ctx, &n)
	}
	return n, t.dbErr("count tombstones", err)
}
