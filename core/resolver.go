package core

import (
	"context"
	"time"
)

// Conflict is what a Resolver decides on: the op the authority refused, the
// version it started from (Base, nil when unknown), the local data (nil for a
// delete) and the authority's current record (nil when the record is missing
// or outside the caller's scope).
type Conflict struct {
	Kind          string
	ID            string
	Op            Op
	Base          *Record
	Local         *Record
	Server        *Record
	ChangedFields []string // nil = unknown
	Strategy      string   // name of the strategy asked
	DetectedAt    time.Time
}

// Action is what a Resolution does.
type Action uint8

// The actions.
const (
	ActionAcceptServer Action = iota + 1 // drop the local change; the row takes the server's version
	ActionAcceptClient                   // push the local change again, forced
	ActionAcceptMerged                   // push Data with the server's version as base (not forced)
	ActionDefer                          // keep the op; put the conflict in the inbox
	ActionDiscard                        // drop the op; the row takes the server's version
)

var actionNames = [...]string{"", "accept_server", "accept_client", "accept_merged", "defer", "discard"}

func (a Action) String() string {
	if a > 0 && int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// Resolution is a Resolver's decision.
type Resolution struct {
	Action Action
	Data   map[string]any // ActionAcceptMerged: the merged business fields
}

// The resolutions that need no data.
var (
	AcceptServer = Resolution{Action: ActionAcceptServer}
	AcceptClient = Resolution{Action: ActionAcceptClient}
	Defer        = Resolution{Action: ActionDefer}
	Discard      = Resolution{Action: ActionDiscard}
)

// AcceptMerged pushes data, with the conflicting server version as base.
func AcceptMerged(data map[string]any) Resolution {
	return Resolution{Action: ActionAcceptMerged, Data: data}
}

// Resolver decides what a conflict becomes. Built-in strategies, user
// functions and plugins all implement it. An error (or a panic) leaves the op
// in the outbox untouched and is reported as an event.
type Resolver interface {
	Resolve(ctx context.Context, c Conflict) (Resolution, error)
}

// BatchResolver resolves many conflicts in one call, one resolution per
// conflict in order. The engine uses it when a strategy implements it.
type BatchResolver interface {
	ResolveBatch(ctx context.Context, cs []Conflict) ([]Resolution, error)
}

// ResolverFunc adapts a function to Resolver.
type ResolverFunc func(ctx context.Context, c Conflict) (Resolution, error)

// Resolve implements Resolver.
func (f ResolverFunc) Resolve(ctx context.Context, c Conflict) (Resolution, error) { return f(ctx, c) }

// Named is implemented by resolvers that have a strategy name for events.
type Named interface {
	StrategyName() string
}

// StrategyName returns r's name, or "custom".
func StrategyName(r Resolver) string {
	if n, ok := r.(Named); ok {
		return n.StrategyName()
	}
	return "custom"
}

// Conflicts chooses the strategy per kind; Default applies to every kind not
// named in Kinds. A nil Default is AutoPreserve.
type Conflicts struct {
	Default Resolver
	Kinds   map[string]Resolver
}

// For returns the strategy of a kind.
func (c Conflicts) For(kind string) Resolver {
	if r, ok := c.Kinds[kind]; ok && r != nil {
		return r
	}
	if c.Default != nil {
		return c.Default
	}
	return AutoPreserve
}
