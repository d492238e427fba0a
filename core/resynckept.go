package core

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
)

// metaResyncKept keys, while a clearing resync of a kind is under way, the
// ids of the rows its clear kept because they had ops in the outbox and
// that its walk has not brought yet. A kept row whose op then settles with
// an answer the authority no longer stands by (a replayed answer to an op
// whose record was deleted and its tombstone collected since) would
// otherwise outlive the record: the walk from the start never mentions it.
// When the walk ends, such a row without ops left is removed. The list is
// written in the transactions of the clear and of each page, so it survives
// a crash with the resync it belongs to.
const metaResyncKept = "resync_kept:"

// rememberKeptRows records the ids of kind's rows that have ops: the rows a
// clear keeps.
func rememberKeptRows(ctx context.Context, tx Tx, kind string) error {
	ops, err := tx.Ops(ctx, OpFilter{Kinds: []string{kind}})
	if err != nil {
		return err
	}
	var ids []string
	for _, op := range ops {
		ids = append(ids, op.ID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return setKeptRows(ctx, tx, kind, ids)
}

func keptRows(ctx context.Context, tx Tx, kind string) ([]string, error) {
	v, err := tx.Meta(ctx, metaResyncKept+kind)
	if errors.Is(err, ErrNotFound) || v == "" {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var ids []string
	if err := json.Unmarshal([]byte(v), &ids); err != nil {
		return nil, err
	}
	return ids, nil
}

func setKeptRows(ctx context.Context, tx Tx, kind string, ids []string) error {
	if len(ids) == 0 {
		if _, err := tx.Meta(ctx, metaResyncKept+kind); errors.Is(err, ErrNotFound) {
			return nil
		}
		return tx.SetMeta(ctx, metaResyncKept+kind, "")
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	return tx.SetMeta(ctx, metaResyncKept+kind, string(b))
}

// keptRowsSeen drops from the list the ids a page brought: the authority
// has those records.
func keptRowsSeen(ctx context.Context, tx Tx, kind string, recs []Record) error {
	ids, err := keptRows(ctx, tx, kind)
	if err != nil || len(ids) == 0 {
		return err
	}
	seen := make(map[string]bool, len(recs))
	for i := range recs {
		seen[recs[i].ID] = true
	}
	left := slices.DeleteFunc(ids, func(id string) bool { return seen[id] })
	return setKeptRows(ctx, tx, kind, left)
}

// sweepKeptRows ends the walk of a clearing resync: a row the clear kept,
// that the walk never brought and that has no op left, is a record the
// authority no longer has, and is removed.
func sweepKeptRows(ctx context.Context, tx Tx, kind string) error {
	ids, err := keptRows(ctx, tx, kind)
	if err != nil || len(ids) == 0 {
		return err
	}
	for _, id := range ids {
		ops, err := tx.Ops(ctx, OpFilter{Kind: kind, ID: id})
		if err != nil {
			return err
		}
		if len(ops) > 0 {
			continue // a row with ops is never overwritten or removed by a pull (G3 of docs/guarantees.md): the op's answer settles it
		}
		if err := tx.Remove(ctx, kind, id); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return setKeptRows(ctx, tx, kind, nil)
}

// beginFirstWalk prepares a walk of kind from the start outside a resync
// (a replica's first pull): the rows it already holds (its own pushes,
// settled) are listed like a clear's kept rows, so that one whose record
// the authority deleted and collected meanwhile is removed when the walk
// ends. A zero cursor is never reset_required, so nothing else would
// remove it. A resync under way has its own list; a walk resumed after an
// interruption keeps the list it had.
func beginFirstWalk(ctx context.Context, st Store, kind string) error {
	return st.Update(ctx, func(ctx context.Context, tx Tx) error {
		if _, err := tx.Meta(ctx, metaResync+kind); err == nil {
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if _, err := tx.Meta(ctx, metaResyncKept+kind); err == nil {
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		var ids []string
		after := ""
		for {
			recs, err := tx.List(ctx, kind, ListOptions{AfterID: after, Limit: 1000, IncludeDeleted: true})
			if err != nil {
				return err
			}
			for _, r := range recs {
				ids = append(ids, r.ID)
			}
			if len(recs) < 1000 {
				break
			}
			after = recs[len(recs)-1].ID
		}
		return setKeptRows(ctx, tx, kind, ids)
	})
}
