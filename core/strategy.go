package core

import (
	"context"
	"fmt"
	"time"
)

// The names of the built-in strategies, as StrategyName reports them.
const (
	StrategyAutoPreserve  = "autoPreserve"
	StrategyServerWins    = "serverWins"
	StrategyClientWins    = "clientWins"
	StrategyLastWriteWins = "lastWriteWins"
	StrategyMerge         = "merge"
	StrategyManual        = "manual"
)

type namedResolver struct {
	name string
	fn   func(ctx context.Context, c Conflict) (Resolution, error)
}

func (r namedResolver) Resolve(ctx context.Context, c Conflict) (Resolution, error) {
	return r.fn(ctx, c)
}

func (r namedResolver) StrategyName() string { return r.name }

var (
	_ Resolver = namedResolver{}
	_ Named    = namedResolver{}
)

// AutoPreserve is the default strategy: it keeps every change it can.
//
//   - Upsert against a live server record: AcceptMerged of ThreeWayMerge(base,
//     local, server, changed fields) when the base data is known (c.Base, else
//     c.Op.BasePayload), else of PreservingMerge(local, server, changed
//     fields). The changed fields are c.ChangedFields, else c.Op.ChangedFields
//     (nil = unknown). The merged data is pushed with the server's version as
//     base, so a third writer in between makes a new conflict.
//   - Upsert against a server tombstone: AcceptMerged of the local data, which
//     re-creates the record on top of the tombstone.
//   - Delete against a newer server version: AcceptServer; the data is kept
//     and the row takes the server's version.
//   - No server record (the authority answered NotFound): AcceptClient, which
//     re-creates the record for an upsert and finishes a delete.
var AutoPreserve Resolver = namedResolver{StrategyAutoPreserve, autoPreserve}

func autoPreserve(_ context.Context, c Conflict) (Resolution, error) {
	if c.Server == nil {
		return AcceptClient, nil
	}
	if c.Op.Type == OpDelete {
		return AcceptServer, nil
	}
	local, err := localFields(c)
	if err != nil {
		return Resolution{}, err
	}
	if c.Server.Deleted() {
		return AcceptMerged(local), nil
	}
	server, err := c.Server.Fields()
	if err != nil {
		return Resolution{}, err
	}
	base, err := baseFields(c)
	if err != nil {
		return Resolution{}, err
	}
	changed := changedFields(c)
	if base != nil {
		return AcceptMerged(ThreeWayMerge(base, local, server, changed)), nil
	}
	return AcceptMerged(PreservingMerge(local, server, changed)), nil
}

// ServerWins drops the local change: AcceptServer for an upsert, a delete and
// a missing server record alike. The row takes the server's version (for a
// missing record, the row follows the authority and goes away).
var ServerWins Resolver = namedResolver{StrategyServerWins, func(context.Context, Conflict) (Resolution, error) {
	return AcceptServer, nil
}}

// ClientWins pushes the local change again, forced: AcceptClient for an
// upsert (the local data overwrites the server's), a delete (the record is
// deleted whatever its server version) and a missing server record (the
// record is re-created). The authority still validates the forced write.
var ClientWins Resolver = namedResolver{StrategyClientWins, func(context.Context, Conflict) (Resolution, error) {
	return AcceptClient, nil
}}

// LastWriteWins keeps whichever edit was made last, for upserts and deletes
// alike. The local edit time is c.Op.EditedAt, else c.Local.EditedAt, else
// c.Op.EnqueuedAt, clamped to c.DetectedAt when it lies after it (a client
// clock in the future does not win forever). The server's edit time is its
// EditedAt, else its UpdatedAt. A strictly later local edit gives AcceptClient
// (forced; a delete deletes), anything else AcceptServer (an upsert is
// dropped; a delete keeps the server's data). A missing server record gives
// AcceptClient.
var LastWriteWins Resolver = namedResolver{StrategyLastWriteWins, lastWriteWins}

func lastWriteWins(_ context.Context, c Conflict) (Resolution, error) {
	if c.Server == nil {
		return AcceptClient, nil
	}
	if localEditTime(c).After(serverEditTime(c.Server)) {
		return AcceptClient, nil
	}
	return AcceptServer, nil
}

func localEditTime(c Conflict) time.Time {
	t := c.Op.EditedAt
	if t.IsZero() && c.Local != nil {
		t = c.Local.EditedAt
	}
	if t.IsZero() {
		t = c.Op.EnqueuedAt
	}
	if !c.DetectedAt.IsZero() && t.After(c.DetectedAt) {
		t = c.DetectedAt
	}
	return t
}

func serverEditTime(r *Record) time.Time {
	if !r.EditedAt.IsZero() {
		return r.EditedAt
	}
	return r.UpdatedAt
}

// MergeFunc merges a conflict's data for MergeWith: base is the version the
// local edit started from (nil when unknown), local the local data and server
// the server's (nil when the server record is a tombstone). The result is
// pushed with the server's version as base. A nil result with a nil error
// drops the local change (AcceptServer). The maps are fresh copies the
// function may modify.
type MergeFunc func(ctx context.Context, base, local, server map[string]any) (map[string]any, error)

// MergeWith returns the "merge" strategy, which lets fn merge the data.
//
//   - Upsert against a server record or tombstone: AcceptMerged of fn's
//     result (AcceptServer when fn returns nil). An error from fn is the
//     resolver's error: the op stays in the outbox and an event reports it.
//   - Delete against a newer server version: AcceptServer without calling fn;
//     the data is kept and the row takes the server's version.
//   - No server record (the authority answered NotFound): AcceptClient, which
//     re-creates the record for an upsert and finishes a delete; fn is not
//     called.
//
// MergeWith panics when fn is nil.
func MergeWith(fn MergeFunc) Resolver {
	if fn == nil {
		panic("offsync: MergeWith called with a nil MergeFunc")
	}
	return namedResolver{StrategyMerge, func(ctx context.Context, c Conflict) (Resolution, error) {
		if c.Server == nil {
			return AcceptClient, nil
		}
		if c.Op.Type == OpDelete {
			return AcceptServer, nil
		}
		local, err := localFields(c)
		if err != nil {
			return Resolution{}, err
		}
		var server map[string]any
		if !c.Server.Deleted() {
			if server, err = c.Server.Fields(); err != nil {
				return Resolution{}, err
			}
		}
		base, err := baseFields(c)
		if err != nil {
			return Resolution{}, err
		}
		merged, err := fn(ctx, base, local, server)
		if err != nil {
			return Resolution{}, fmt.Errorf("merge strategy for %s/%s: %w", c.Kind, c.ID, err)
		}
		if merged == nil {
			return AcceptServer, nil
		}
		return AcceptMerged(merged), nil
	}}
}

// Manual returns the "manual" strategy: r decides every conflict (upsert,
// delete or missing server record) and may answer AcceptServer, AcceptClient,
// AcceptMerged, Defer or Discard; Defer leaves the op in the outbox and the
// conflict in the inbox until the application resolves it. Manual checks r's
// answers: an unknown action, or AcceptMerged without data, is an error
// wrapping ErrInvalid. When r is also a BatchResolver, so is the result.
// Manual panics when r is nil.
func Manual(r Resolver) Resolver {
	if r == nil {
		panic("offsync: Manual called with a nil Resolver")
	}
	m := manualResolver{r: r}
	if br, ok := r.(BatchResolver); ok {
		return manualBatchResolver{manualResolver: m, br: br}
	}
	return m
}

type manualResolver struct{ r Resolver }

func (m manualResolver) Resolve(ctx context.Context, c Conflict) (Resolution, error) {
	res, err := m.r.Resolve(ctx, c)
	if err != nil {
		return Resolution{}, err
	}
	if err := checkResolution(res); err != nil {
		return Resolution{}, fmt.Errorf("manual strategy for %s/%s: %w", c.Kind, c.ID, err)
	}
	return res, nil
}

func (manualResolver) StrategyName() string { return StrategyManual }

type manualBatchResolver struct {
	manualResolver
	br BatchResolver
}

func (m manualBatchResolver) ResolveBatch(ctx context.Context, cs []Conflict) ([]Resolution, error) {
	res, err := m.br.ResolveBatch(ctx, cs)
	if err != nil {
		return nil, err
	}
	if len(res) != len(cs) {
		return nil, fmt.Errorf("%w: manual strategy: %d resolutions for %d conflicts", ErrInvalid, len(res), len(cs))
	}
	for i, r := range res {
		if err := checkResolution(r); err != nil {
			return nil, fmt.Errorf("manual strategy for %s/%s: %w", cs[i].Kind, cs[i].ID, err)
		}
	}
	return res, nil
}

var (
	_ Named         = manualResolver{}
	_ BatchResolver = manualBatchResolver{}
)

// checkResolution refuses an unknown action, and merged data that is missing
// or uses a reserved field name.
func checkResolution(r Resolution) error {
	switch r.Action {
	case ActionAcceptServer, ActionAcceptClient, ActionDefer, ActionDiscard:
		return nil
	case ActionAcceptMerged:
		if r.Data == nil {
			return fmt.Errorf("%w: AcceptMerged without data", ErrInvalid)
		}
		for k := range r.Data {
			if err := CheckFieldName(k); err != nil {
				return fmt.Errorf("merged data: %w", err)
			}
		}
		return nil
	}
	return fmt.Errorf("%w: resolution with unknown action %d", ErrInvalid, r.Action)
}

// BuiltinStrategy returns the built-in strategy with the given name, for
// configuration files: autoPreserve, serverWins, clientWins, lastWriteWins,
// or manual, which in a configuration means "every conflict of the kind
// waits in the conflict inbox" (Manual with a resolver that always
// defers; the application or `offsync conflicts resolve` settles it).
// "merge" needs a function (MergeWith) and, like an unknown name, gives an
// error wrapping ErrInvalid.
func BuiltinStrategy(name string) (Resolver, error) {
	switch name {
	case StrategyAutoPreserve:
		return AutoPreserve, nil
	case StrategyServerWins:
		return ServerWins, nil
	case StrategyClientWins:
		return ClientWins, nil
	case StrategyLastWriteWins:
		return LastWriteWins, nil
	case StrategyManual:
		return Manual(deferAll), nil
	case StrategyMerge:
		return nil, fmt.Errorf("%w: strategy %q needs a function (use core.MergeWith)", ErrInvalid, name)
	}
	return nil, fmt.Errorf("%w: unknown conflict strategy %q", ErrInvalid, name)
}

// deferAll defers every conflict to the inbox.
var deferAll = ResolverFunc(func(context.Context, Conflict) (Resolution, error) { return Defer, nil })

// localFields is the local data of an upsert conflict: c.Local, else the op's
// payload.
func localFields(c Conflict) (map[string]any, error) {
	if c.Local != nil {
		return c.Local.Fields()
	}
	return Record{Kind: c.Kind, ID: c.ID, Data: c.Op.Payload}.Fields()
}

// baseFields is the data the local edit started from, nil when unknown:
// c.Base, else the op's BasePayload.
func baseFields(c Conflict) (map[string]any, error) {
	if c.Base != nil {
		return c.Base.Fields()
	}
	if len(c.Op.BasePayload) == 0 || string(c.Op.BasePayload) == "null" {
		return nil, nil
	}
	return Record{Kind: c.Kind, ID: c.ID, Data: c.Op.BasePayload}.Fields()
}

func changedFields(c Conflict) []string {
	if c.ChangedFields != nil {
		return c.ChangedFields
	}
	return c.Op.ChangedFields
}
