package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/offsync/offsync/core"
)

// Test-only hooks, read from the environment. They let the host's tests
// observe and kill the process at a known point; nothing else uses them.
const (
	// envBlock names a file: while it exists, Resolve and ResolveBatch
	// block (until the host cancels the call) instead of answering.
	envBlock = "OFFSYNC_PLUGIN_BLOCK"
	// envPIDFile names a file (typically a FIFO) the plugin writes its pid
	// to when it starts blocking.
	envPIDFile = "OFFSYNC_PLUGIN_PIDFILE"
	// envStarted names a file to which each start appends the pid.
	envStarted = "OFFSYNC_PLUGIN_STARTED"
)

// Rules resolves inventory conflicts.
//
//   - Upsert against a live server record whose base is known: the text,
//     list and object fields merge three-way as autoPreserve does
//     (core.ThreeWayMerge); each counter field takes server + (local - base),
//     so a sale made offline and a delivery booked on the server both count.
//   - If a merged counter is negative (more sold than there is), the merge
//     is refused: AcceptServer. The local edit is dropped, the row takes the
//     server's stock, and the engine's ConflictResolved event carries the
//     decision, so the application can tell the user the sale did not go
//     through. (An error would leave the op to fail on every sync; Defer
//     would hold it in the conflict inbox for a person to decide, which a
//     different shop may prefer.)
//   - Upsert without a known base: the deltas cannot be computed, so the
//     conflict is deferred to the conflict inbox.
//   - Everything else (a delete, a server tombstone, a missing server
//     record) follows core.AutoPreserve.
//
// A counter that is not an integer is an error wrapping core.ErrInvalid: the
// op stays in the outbox and the host reports it.
type Rules struct {
	Counters []string
}

var (
	_ core.Resolver      = (*Rules)(nil)
	_ core.BatchResolver = (*Rules)(nil)
)

// Resolve implements core.Resolver.
func (r *Rules) Resolve(ctx context.Context, c core.Conflict) (core.Resolution, error) {
	if err := testBlock(ctx); err != nil {
		return core.Resolution{}, err
	}
	return r.resolve(ctx, c)
}

// ResolveBatch implements core.BatchResolver.
func (r *Rules) ResolveBatch(ctx context.Context, cs []core.Conflict) ([]core.Resolution, error) {
	if err := testBlock(ctx); err != nil {
		return nil, err
	}
	out := make([]core.Resolution, len(cs))
	for i, c := range cs {
		res, err := r.resolve(ctx, c)
		if err != nil {
			return nil, err
		}
		out[i] = res
	}
	return out, nil
}

func (r *Rules) resolve(ctx context.Context, c core.Conflict) (core.Resolution, error) {
	if c.Server == nil || c.Server.Deleted() || c.Op.Type != core.OpUpsert {
		return core.AutoPreserve.Resolve(ctx, c)
	}
	base, err := dataOf(c.Base, c.Kind, c.ID, c.Op.BasePayload)
	if err != nil {
		return core.Resolution{}, err
	}
	if base == nil {
		return core.Defer, nil
	}
	local, err := dataOf(c.Local, c.Kind, c.ID, c.Op.Payload)
	if err != nil {
		return core.Resolution{}, err
	}
	server, err := c.Server.Fields()
	if err != nil {
		return core.Resolution{}, err
	}
	changed := c.ChangedFields
	if changed == nil {
		changed = c.Op.ChangedFields
	}
	merged := core.ThreeWayMerge(base, local, server, changed)
	for _, f := range r.Counters {
		if _, ok := local[f]; !ok {
			continue // not a counter of this record, or removed locally
		}
		b, err := counter(base, f, c)
		if err != nil {
			return core.Resolution{}, err
		}
		l, err := counter(local, f, c)
		if err != nil {
			return core.Resolution{}, err
		}
		s, err := counter(server, f, c)
		if err != nil {
			return core.Resolution{}, err
		}
		d := l - b
		v := s + d
		if (b < 0 && d < l) || (b > 0 && d > l) || (d > 0 && v < s) || (d < 0 && v > s) {
			return core.Resolution{}, fmt.Errorf("%w: %s/%s: counter %q overflows", core.ErrInvalid, c.Kind, c.ID, f)
		}
		if v < 0 {
			return core.AcceptServer, nil
		}
		merged[f] = json.Number(strconv.FormatInt(v, 10))
	}
	return core.AcceptMerged(merged), nil
}

// dataOf decodes a record's data, else raw; nil when neither is known.
func dataOf(rec *core.Record, kind, id string, raw json.RawMessage) (map[string]any, error) {
	if rec != nil {
		return rec.Fields()
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	return core.Record{Kind: kind, ID: id, Data: raw}.Fields()
}

// counter reads an integer field; a missing or null field counts as 0.
func counter(m map[string]any, f string, c core.Conflict) (int64, error) {
	switch v := m[f].(type) {
	case nil:
		return 0, nil
	case json.Number:
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return n, nil
		}
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int64(v), nil
		}
	}
	return 0, fmt.Errorf("%w: %s/%s: counter %q is not an integer: %v", core.ErrInvalid, c.Kind, c.ID, f, m[f])
}

// testBlock is the test-only hook of envBlock.
func testBlock(ctx context.Context) error {
	path := os.Getenv(envBlock)
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	if pidFile := os.Getenv(envPIDFile); pidFile != "" {
		_ = os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600)
	}
	<-ctx.Done()
	return ctx.Err()
}
