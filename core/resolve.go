package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

type pendingConflict struct {
	op     Op
	server *Record // nil: the authority has no such record (NotFound)
}

// conflictOf builds what a resolver sees.
func (e *Engine) conflictOf(op Op, server *Record, now time.Time) Conflict {
	c := Conflict{
		Kind: op.Kind, ID: op.ID, Op: op, Server: server,
		ChangedFields: slices.Clone(op.ChangedFields),
		Strategy:      StrategyName(e.opts.Conflicts.For(op.Kind)),
		DetectedAt:    now,
	}
	if !op.BaseUpdatedAt.IsZero() && op.BasePayload != nil {
		c.Base = &Record{Kind: op.Kind, ID: op.ID, UpdatedAt: op.BaseUpdatedAt, Data: op.BasePayload}
	}
	if op.Type == OpUpsert {
		c.Local = &Record{Kind: op.Kind, ID: op.ID, UpdatedAt: op.BaseUpdatedAt, EditedAt: op.EditedAt, Data: op.Payload}
	}
	return c
}

// resolve asks each conflict's strategy, applies the resolutions and pushes
// the ones that need a resolution push.
func (e *Engine) resolve(ctx context.Context, pcs []pendingConflict, st *Stats) error {
	ctx, end := StartSpan(ctx, e.opts.Tracer, SpanResolve, IntAttr(AttrConflicts, len(pcs)), Attr{})
	err := e.resolveIn(ctx, pcs, st)
	end(err)
	return err
}

func (e *Engine) resolveIn(ctx context.Context, pcs []pendingConflict, st *Stats) error {
	now := e.now()
	cs := make([]Conflict, len(pcs))
	for i, pc := range pcs {
		cs[i] = e.conflictOf(pc.op, pc.server, now)
		st.Conflicts++
		e.emit(ConflictDetected{At: e.at(), Conflict: cs[i]})
	}
	res, errs := e.askResolvers(ctx, cs)

	var again []Op
	var evs []Event
	resolved := 0
	err := e.store.Update(ctx, func(ctx context.Context, tx Tx) error {
		again, evs, resolved = again[:0], evs[:0], 0
		for i, c := range cs {
			if errs[i] != nil {
				// The op stays as it was; the next sync asks again.
				op := c.Op
				op.State = StatePending
				op.LastError = errs[i].Error()
				if err := tx.UpdateOp(ctx, op.OpID, op); err != nil {
					return err
				}
				evs = append(evs, SyncError{At: e.at(), Kind: c.Kind, Err: errs[i], Category: CategoryResolver, WillRetry: true})
				continue
			}
			push, ev, err := e.applyResolution(ctx, tx, c, res[i])
			if err != nil {
				return err
			}
			evs = append(evs, ev...)
			if push != nil {
				again = append(again, *push)
			}
			if res[i].Action != ActionDefer {
				resolved++
			}
		}
		return nil
	})
	if err != nil {
		return e.fail("", fmt.Errorf("offsync: apply resolutions: %w", err), false, st)
	}
	st.Resolved += resolved
	for _, ev := range evs {
		if se, ok := ev.(SyncError); ok {
			st.Errors++
			e.emit(se)
			continue
		}
		e.emit(ev)
	}
	if len(again) == 0 {
		return nil
	}
	size := e.batchSize(ctx)
	for start := 0; start < len(again); start += size {
		paused, err := e.send(ctx, again[start:min(start+size, len(again))], true, st)
		if err != nil || paused {
			return err
		}
	}
	return nil
}

// askResolvers runs each conflict's strategy, batching those whose strategy
// is a BatchResolver. A panic is turned into that conflict's error.
func (e *Engine) askResolvers(ctx context.Context, cs []Conflict) ([]Resolution, []error) {
	res := make([]Resolution, len(cs))
	errs := make([]error, len(cs))
	// Conflicts are grouped by kind: one strategy per kind, and resolvers
	// need not be comparable.
	groups := map[string][]int{}
	var order []string
	for i, c := range cs {
		if _, ok := groups[c.Kind]; !ok {
			order = append(order, c.Kind)
		}
		groups[c.Kind] = append(groups[c.Kind], i)
	}
	for _, kind := range order {
		r := e.opts.Conflicts.For(kind)
		idx := groups[kind]
		if br, ok := r.(BatchResolver); ok && len(idx) > 1 {
			batch := make([]Conflict, len(idx))
			for j, i := range idx {
				batch[j] = cs[i]
			}
			out, err := safeBatch(ctx, br, batch)
			if err == nil && len(out) != len(batch) {
				err = fmt.Errorf("offsync: resolver %s returned %d resolutions for %d conflicts", StrategyName(r), len(out), len(batch))
			}
			for j, i := range idx {
				if err != nil {
					errs[i] = err
				} else {
					res[i] = out[j]
				}
			}
			continue
		}
		for _, i := range idx {
			res[i], errs[i] = safeResolve(ctx, r, cs[i])
		}
	}
	for i := range cs {
		if errs[i] == nil {
			errs[i] = checkResolution(res[i])
		}
		if errs[i] != nil {
			errs[i] = fmt.Errorf("offsync: resolve conflict on %s/%s with %s: %w", cs[i].Kind, cs[i].ID, cs[i].Strategy, errs[i])
		}
	}
	return res, errs
}

func safeResolve(ctx context.Context, r Resolver, c Conflict) (res Resolution, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("resolver panicked: %v", p)
		}
	}()
	return r.Resolve(ctx, c)
}

func safeBatch(ctx context.Context, r BatchResolver, cs []Conflict) (res []Resolution, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("resolver panicked: %v", p)
		}
	}()
	return r.ResolveBatch(ctx, cs)
}

// applyResolution carries a resolution out inside tx. It returns the op to
// push again, if any, and the events to emit after the commit.
func (e *Engine) applyResolution(ctx context.Context, tx Tx, c Conflict, r Resolution) (*Op, []Event, error) {
	op := c.Op
	cur := c.Server
	switch r.Action {
	case ActionAcceptServer, ActionDiscard:
		if err := e.settle(ctx, tx, op, cur); err != nil {
			return nil, nil, err
		}
		var data map[string]any
		if cur != nil && !cur.Deleted() {
			data, _ = cur.Fields()
		}
		return nil, []Event{ConflictResolved{At: e.at(), Conflict: c, Resolution: r, Data: data}}, nil

	case ActionAcceptClient:
		op.Force = true
		op.State = StateInFlight
		if cur != nil {
			op.BaseUpdatedAt, op.BasePayload = cur.UpdatedAt, cur.Data
		} else {
			op.BaseUpdatedAt, op.BasePayload = time.Time{}, nil
		}
		if err := tx.UpdateOp(ctx, op.OpID, op); err != nil {
			return nil, nil, err
		}
		if err := tx.DeleteConflict(ctx, op.OpID); err != nil {
			return nil, nil, err
		}
		var data map[string]any
		if c.Local != nil {
			data, _ = c.Local.Fields()
		}
		return &op, []Event{ConflictResolved{At: e.at(), Conflict: c, Resolution: r, Data: data}}, nil

	case ActionAcceptMerged:
		payload, err := json.Marshal(r.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: merged data: %v", ErrInvalid, err)
		}
		// Not forced: pushed with the conflicting version as base, so a
		// third writer in between makes a new conflict, not a silent loss.
		op.Type, op.Payload, op.Force, op.ChangedFields = OpUpsert, payload, false, nil
		op.State = StateInFlight
		base := Record{Kind: op.Kind, ID: op.ID}
		if cur != nil {
			base = *cur
		}
		op.BaseUpdatedAt, op.BasePayload = base.UpdatedAt, base.Data
		if cur == nil {
			op.BasePayload = nil
		}
		if err := tx.UpdateOp(ctx, op.OpID, op); err != nil {
			return nil, nil, err
		}
		if err := tx.DeleteConflict(ctx, op.OpID); err != nil {
			return nil, nil, err
		}
		row := Record{Kind: op.Kind, ID: op.ID, UpdatedAt: base.UpdatedAt, EditedAt: op.EditedAt, Data: payload}
		if err := tx.Put(ctx, row); err != nil {
			return nil, nil, err
		}
		if err := tx.MarkDeletedLocal(ctx, op.Kind, op.ID, time.Time{}); err != nil {
			return nil, nil, err
		}
		var local, server map[string]any
		if c.Local != nil {
			local, _ = c.Local.Fields()
		}
		if cur != nil {
			server, _ = cur.Fields()
		}
		return &op, []Event{
			DataMerged{At: e.at(), Kind: op.Kind, ID: op.ID, Local: local, Server: server, Merged: r.Data},
			ConflictResolved{At: e.at(), Conflict: c, Resolution: r, Data: r.Data},
		}, nil

	case ActionDefer:
		op.State = StateDeferred
		if err := tx.UpdateOp(ctx, op.OpID, op); err != nil {
			return nil, nil, err
		}
		if err := tx.PutConflict(ctx, entryOf(c)); err != nil {
			return nil, nil, err
		}
		return nil, []Event{ConflictDeferred{At: e.at(), Conflict: c}}, nil
	}
	return nil, nil, fmt.Errorf("%w: unknown resolution action %d", ErrInvalid, r.Action)
}

func entryOf(c Conflict) ConflictEntry {
	return ConflictEntry{
		OpID: c.Op.OpID, Kind: c.Kind, ID: c.ID, Type: c.Op.Type,
		Base: c.Base, Local: c.Local, Server: c.Server,
		ChangedFields: c.ChangedFields, DetectedAt: c.DetectedAt,
	}
}

// Conflicts lists the conflict inbox: deferred conflicts waiting for the
// application.
func (e *Engine) Conflicts(ctx context.Context, f ConflictFilter) ([]ConflictEntry, error) {
	var out []ConflictEntry
	err := e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.Conflicts(ctx, f)
		return err
	})
	return out, err
}

// Resolve settles a deferred conflict with the application's decision. It
// takes effect at the next Sync: AcceptClient and AcceptMerged are pushed
// then; AcceptServer and Discard put the server's version in the row now.
func (e *Engine) Resolve(ctx context.Context, opID string, r Resolution) error {
	if err := e.begin(); err != nil {
		return err
	}
	defer e.running.Done()
	var evs []Event
	var entry ConflictEntry
	err := e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		entries, err := tx.Conflicts(ctx, ConflictFilter{})
		if err != nil {
			return err
		}
		for _, en := range entries {
			if en.OpID == opID {
				entry = en
				return nil
			}
		}
		return fmt.Errorf("%w: no deferred conflict for op %q", ErrNotFound, opID)
	})
	if err != nil {
		return err
	}
	server := entry.Server
	stale := false
	if r.Action == ActionAcceptServer || r.Action == ActionDiscard {
		// The inbox entry may be old: take the authority's current version.
		if fresh, ok, err := e.fetch(ctx, entry.Kind, entry.ID); err != nil {
			return err
		} else if ok {
			server = fresh
		} else {
			stale = true
		}
	}
	if stale {
		unlock := e.lockKinds([]string{entry.Kind})
		defer unlock()
	}
	err = e.store.Update(ctx, func(ctx context.Context, tx Tx) error {
		op, err := tx.GetOp(ctx, opID)
		if err != nil {
			return err
		}
		if op.State != StateDeferred {
			return fmt.Errorf("%w: op %q is %s, not deferred", ErrInvalid, opID, op.State)
		}
		c := e.conflictOf(op, server, entry.DetectedAt)
		if err := checkResolution(r); err != nil {
			return err
		}
		if r.Action == ActionDefer {
			return nil
		}
		push, ev, err := e.applyResolution(ctx, tx, c, r)
		if err != nil {
			return err
		}
		if stale {
			// Restored to the stored, maybe old, server version: pull again
			// what came after it.
			if err := rewindFor(ctx, tx, entry.Kind, entry.ID, server); err != nil {
				return err
			}
		}
		if push != nil {
			// Pushed at the next sync, like any pending op.
			push.State = StatePending
			if err := tx.UpdateOp(ctx, push.OpID, *push); err != nil {
				return err
			}
		}
		evs = ev
		return tx.DeleteConflict(ctx, opID)
	})
	if err != nil {
		return err
	}
	e.emitAll(evs)
	e.notifyWrite()
	return nil
}

// fetch asks a Getter transport for the current record; ok is false when
// the transport cannot fetch. A missing record is (nil, true, nil).
func (e *Engine) fetch(ctx context.Context, kind, id string) (*Record, bool, error) {
	g, ok := e.tr.(Getter)
	if !ok {
		return nil, false, nil
	}
	rec, err := g.Get(ctx, kind, id)
	if errors.Is(err, ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("offsync: fetch %s/%s: %w", kind, id, err)
	}
	rec.Kind, rec.ID = kind, id
	return &rec, true, nil
}

// DeadLetters lists the ops refused for good or over their attempt budget.
func (e *Engine) DeadLetters(ctx context.Context, kinds ...string) ([]Op, error) {
	var out []Op
	err := e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		out, err = tx.Ops(ctx, OpFilter{Kinds: kinds, States: []OpState{StateDead}})
		return err
	})
	return out, err
}

// Retry gives a dead op a fresh attempt budget; it is pushed at the next Sync.
func (e *Engine) Retry(ctx context.Context, opID string) error {
	err := e.store.Update(ctx, func(ctx context.Context, tx Tx) error {
		op, err := tx.GetOp(ctx, opID)
		if err != nil {
			return err
		}
		if op.State != StateDead {
			return fmt.Errorf("%w: op %q is %s, not dead", ErrInvalid, opID, op.State)
		}
		op.State, op.Attempts, op.NextAttemptAt, op.LastError = StatePending, 0, time.Time{}, ""
		return tx.UpdateOp(ctx, opID, op)
	})
	if err == nil {
		e.notifyWrite()
	}
	return err
}

// Drop removes a dead op and restores its local row to the authority's
// version — fetched when the transport can, else the version the edit
// started from — so the row never stays silently diverged. Dropping always
// works locally: a fetch that fails (offline, a kind the server does not
// serve) only makes the restore fall back; DropOp says which it was.
func (e *Engine) Drop(ctx context.Context, opID string) error {
	_, err := e.DropOp(ctx, opID)
	return err
}

// Restore names the version a dropped op's row went back to.
type Restore string

// The versions a dropped op's row can go back to.
const (
	// RestoredServer: the authority's current version, fetched (or the row
	// was removed because the authority has none).
	RestoredServer Restore = "server"
	// RestoredBase: the version the edit started from; the next pull brings
	// any newer one.
	RestoredBase Restore = "base"
	// RestoredNone: no version is known (a create that never reached the
	// authority): the row was removed and the kind is pulled again from
	// the start.
	RestoredNone Restore = "none"
)

// Dropped is what DropOp did.
type Dropped struct {
	// Op is the op removed from the outbox.
	Op Op
	// Restored is the version the local row went back to.
	Restored Restore
	// FetchSkipped is why the authority's version was not fetched: the
	// transport cannot fetch one record, the server did not answer, or it
	// does not serve the kind. Nil when it was fetched.
	FetchSkipped error
}

// errNoGetter is Dropped.FetchSkipped for a transport without Getter.
var errNoGetter = errors.New("the transport cannot fetch one record")

// DropOp is Drop, and says what it restored the row to and why the
// authority's version was not fetched, when it was not. Only the removal is
// required: it fails only when the op is not a dead letter or the local
// store fails.
func (e *Engine) DropOp(ctx context.Context, opID string) (Dropped, error) {
	var op Op
	err := e.store.View(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		op, err = tx.GetOp(ctx, opID)
		return err
	})
	if err != nil {
		return Dropped{}, err
	}
	if op.State != StateDead {
		return Dropped{}, fmt.Errorf("%w: op %q is %s, not dead", ErrInvalid, opID, op.State)
	}
	res := Dropped{Op: op, Restored: RestoredServer}
	var server *Record
	fetched := false
	if _, ok := e.tr.(Getter); !ok {
		res.FetchSkipped = errNoGetter
	} else if server, fetched, err = e.fetch(ctx, op.Kind, op.ID); err != nil {
		if ctx.Err() != nil {
			return Dropped{}, err
		}
		res.FetchSkipped, server, fetched = err, nil, false
	}
	if !fetched {
		res.Restored = RestoredNone
		if !op.BaseUpdatedAt.IsZero() && op.BasePayload != nil {
			server = &Record{Kind: op.Kind, ID: op.ID, UpdatedAt: op.BaseUpdatedAt, Data: op.BasePayload}
			res.Restored = RestoredBase
		}
	}
	// The kind's lock keeps a running pull from moving the cursor past a
	// rewind made here.
	unlock := e.lockKinds([]string{op.Kind})
	defer unlock()
	err = e.store.Update(ctx, func(ctx context.Context, tx Tx) error {
		if _, err := tx.GetOp(ctx, opID); err != nil {
			return err
		}
		if err := e.settle(ctx, tx, op, server); err != nil {
			return err
		}
		if fetched {
			return nil
		}
		return rewindFor(ctx, tx, op.Kind, op.ID, server)
	})
	if err != nil {
		return Dropped{}, err
	}
	return res, nil
}

// rewindFor moves the kind's cursor back so that the next pull brings any
// version of kind/id newer than rec, the possibly stale version a row was
// just restored to without a fetch: pulls skipped the row while it had ops,
// and the cursor may have passed newer versions of it. Without a known
// version (rec nil) the kind is pulled again from the start.
func rewindFor(ctx context.Context, tx Tx, kind, id string, rec *Record) error {
	c, err := tx.Cursor(ctx, kind)
	if err != nil {
		return err
	}
	to := Cursor{}
	if rec != nil {
		to = Cursor{UpdatedAt: rec.UpdatedAt, ID: id}
	}
	if !to.Before(c.UpdatedAt, c.ID) {
		return nil
	}
	return tx.SetCursor(ctx, kind, to)
}
