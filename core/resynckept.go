package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// A walk of a kind from the start (a resync, or a replica's first pull)
// must end with the replica holding no row the authority no longer has. The
// walk itself removes only what it brings (tombstones), and a tombstone the
// authority collected is never brought: a walk from the start is never
// reset_required. So the rows the walk must bring are listed when it
// starts, each id is crossed off when a page brings it, and when the walk
// ends the rows it did not bring and that have no op in the outbox are
// removed (a row with ops is settled by its ops' answers, guarantee G3 of
// docs/guarantees.md):
//
//   - a clearing resync lists the rows its clear kept because they had ops;
//     one of them whose op then settles with an answer the authority no
//     longer stands by (a replayed answer to an op whose record was deleted
//     and its tombstone collected since) would otherwise outlive the record;
//   - a replica's first walk (zero cursor, no resync under way) lists the
//     rows it holds already, its own pushes settled, which another replica
//     may have deleted and the authority collected since;
//   - either walk, while its cursor is zero, lists again at each attempt
//     the rows that settled since (listRows).
//
// A resync that keeps its rows does not walk from the start (see
// keepFrom). The list lives in meta with the resync's mode, under
// metaResync+kind ("clear", "keep" or "first", then a space and the ids as
// a JSON array when there are some), and is written in the transactions
// that start the resync and apply each page that crosses ids off, so it
// survives a crash with the walk it belongs to. Reading it costs one meta
// read per Sync, which scheduleResync does anyway; a page that crosses
// nothing off writes nothing.

// The modes of a walk's bookkeeping.
const (
	walkClear = "clear" // a resync that cleared the kind's rows
	walkKeep  = "keep"  // a resync that kept them
	walkFirst = "first" // a replica's first walk of the kind
)

// walkState is a kind's walk bookkeeping as stored under metaResync+kind.
type walkState struct {
	mode    string   // "" (none), walkClear, walkKeep or walkFirst
	ids     []string // sorted: rows the walk has not brought yet
	unsaved bool     // not stored yet (a first walk's list, until its first page)
}

// resync reports whether a resync is under way.
func (w walkState) resync() bool { return w.mode == walkClear || w.mode == walkKeep }

// idle reports whether there is nothing to finish.
func (w walkState) idle() bool { return w.mode == "" && len(w.ids) == 0 }

func (w walkState) encode() (string, error) {
	if w.mode == "" || (w.mode == walkFirst && len(w.ids) == 0) {
		return "", nil
	}
	if len(w.ids) == 0 {
		return w.mode, nil
	}
	b, err := json.Marshal(w.ids)
	if err != nil {
		return "", err
	}
	return w.mode + " " + string(b), nil
}

func decodeWalk(kind, v string) (walkState, error) {
	mode, list, _ := strings.Cut(v, " ")
	w := walkState{mode: mode}
	switch mode {
	case walkClear, walkKeep, walkFirst:
	default:
		return walkState{}, fmt.Errorf("%w: meta %s%s holds %q, not a walk's state", ErrInvalid, metaResync, kind, v)
	}
	if list != "" {
		if err := json.Unmarshal([]byte(list), &w.ids); err != nil {
			return walkState{}, fmt.Errorf("%w: meta %s%s: %v", ErrInvalid, metaResync, kind, err)
		}
	}
	return w, nil
}

// readWalk reads kind's walk bookkeeping (one meta read).
func readWalk(ctx context.Context, tx Tx, kind string) (walkState, error) {
	v, err := tx.Meta(ctx, metaResync+kind)
	if errors.Is(err, ErrNotFound) || (err == nil && v == "") {
		return walkState{}, nil
	} else if err != nil {
		return walkState{}, err
	}
	return decodeWalk(kind, v)
}

// writeWalk stores kind's walk bookkeeping; an idle one deletes it.
func writeWalk(ctx context.Context, tx Tx, kind string, w walkState) error {
	v, err := w.encode()
	if err != nil {
		return err
	}
	return tx.SetMeta(ctx, metaResync+kind, v)
}

// opIDs returns the sorted ids of kind's rows that have ops.
func opIDs(ctx context.Context, tx Tx, kind string) ([]string, error) {
	ops, err := tx.Ops(ctx, OpFilter{Kinds: []string{kind}})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, op := range ops {
		ids = append(ids, op.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// listRows lists, into the walk state, the rows of kind a replica holds
// when a walk starts from the zero cursor, tombstones included (a local
// delete not pushed yet has an op; a settled tombstone the walk does not
// bring is dropped too): a first walk's rows (its own pushes, settled), or
// the rows a clear kept. It runs at every attempt while the cursor is
// zero, since a row settled between two attempts (an op pushed by the
// Sync whose pull then failed) must be listed too: until a page is
// applied, nothing is stored and nothing else would remove it. Once a
// page is applied the cursor is no longer zero, and a row settled later
// has a version past it: were its tombstone collected, the horizon would
// pass the cursor and the pull would be reset_required. Outside a resync
// the walk becomes a first walk. A replica that holds no rows (a new one)
// costs one read and lists nothing.
func listRows(ctx context.Context, tx Tx, kind string, w walkState) (walkState, error) {
	const chunk = 1000
	ids := slices.Clone(w.ids)
	after := ""
	for {
		recs, err := tx.List(ctx, kind, ListOptions{AfterID: after, Limit: chunk, IncludeDeleted: true})
		if err != nil {
			return walkState{}, err
		}
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		if len(recs) < chunk {
			break
		}
		after = recs[len(recs)-1].ID
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if slices.Equal(ids, w.ids) {
		return w, nil
	}
	if w.mode == "" {
		w.mode = walkFirst
	}
	return walkState{mode: w.mode, ids: ids, unsaved: true}, nil
}

// seen crosses off the ids a page brought: the authority has those
// records. It reports whether anything changed.
func (w walkState) seen(recs []Record) (walkState, bool) {
	if len(w.ids) == 0 {
		return w, false
	}
	brought := make(map[string]bool, len(recs))
	for i := range recs {
		brought[recs[i].ID] = true
	}
	left := make([]string, 0, len(w.ids))
	for _, id := range w.ids {
		if !brought[id] {
			left = append(left, id)
		}
	}
	if len(left) == len(w.ids) {
		return w, false
	}
	return walkState{mode: w.mode, ids: left, unsaved: w.unsaved}, true
}

// sweep ends a walk from the start: a listed row the walk never brought
// and that has no op left is a record the authority no longer has, and is
// removed.
func sweep(ctx context.Context, tx Tx, kind string, ids []string) error {
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
	return nil
}
