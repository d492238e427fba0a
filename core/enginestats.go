package core

import (
	"context"
	"sync"
	"time"
)

// EngineStats are a replica's figures: its outbox now, and what its syncs
// have done since the engine was created (counted from the engine's events,
// whether or not anything subscribes to them). Engine.Stats returns them;
// package github.com/offsync/offsync/metrics exports them to Prometheus.
type EngineStats struct {
	// Outbox counts the ops waiting in the outbox by kind and state.
	Outbox []OpCount `json:"outbox"`
	// Syncs counts the completed syncs (Sync, Resync), Failed those that
	// reported an error, and SyncErrors every error reported (SyncError
	// events: several per sync are possible).
	Syncs       uint64 `json:"syncs"`
	FailedSyncs uint64 `json:"failed_syncs"`
	SyncErrors  uint64 `json:"sync_errors"`
	// LastSync is when the last sync ended, LastSuccess when the last one
	// without an error ended (zero: none yet).
	LastSync    time.Time `json:"last_sync"`
	LastSuccess time.Time `json:"last_success"`
	// Lag is how far behind the authority the last page pulled was: the
	// time between the commit of its newest record on the authority
	// (UpdatedAt) and its application here, by the engine's clock. LagAt is
	// when it was measured (zero: no page pulled yet).
	Lag   time.Duration `json:"lag"`
	LagAt time.Time     `json:"lag_at"`
	// Batches counts the push batches answered.
	Batches uint64 `json:"batches"`
	// Kinds are the per-kind counters, by kind.
	Kinds map[string]EngineKindStats `json:"kinds"`
}

// EngineKindStats are the counters of one kind of a replica.
type EngineKindStats struct {
	Pushed    uint64 `json:"pushed"`    // ops the authority applied
	Failed    uint64 `json:"failed"`    // ops refused or failed (OpFailed)
	Dead      uint64 `json:"dead"`      // of Failed, the ops sent to the dead letters
	Pulled    uint64 `json:"pulled"`    // records applied from pulls (upserts and deletes)
	Kept      uint64 `json:"kept"`      // pulled records left alone because of pending ops
	Conflicts uint64 `json:"conflicts"` // conflicts detected
	Resolved  uint64 `json:"resolved"`  // conflicts resolved
	Deferred  uint64 `json:"deferred"`  // conflicts put in the inbox
}

// counters are the running part of EngineStats.
type counters struct {
	mu    sync.Mutex
	st    EngineStats
	kinds map[string]*EngineKindStats
}

func (c *counters) kind(k string) *EngineKindStats {
	if c.kinds == nil {
		c.kinds = map[string]*EngineKindStats{}
	}
	ks := c.kinds[k]
	if ks == nil {
		ks = &EngineKindStats{}
		c.kinds[k] = ks
	}
	return ks
}

func (c *counters) count(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev := ev.(type) {
	case SyncCompleted:
		c.st.Syncs++
		c.st.LastSync = ev.Time
		if ev.Stats.Errors == 0 {
			c.st.LastSuccess = ev.Time
		} else {
			c.st.FailedSyncs++
		}
	case SyncError:
		c.st.SyncErrors++
	case PagePulled:
		ks := c.kind(ev.Kind)
		ks.Pulled += uint64(ev.Upserts + ev.Deletes)
		ks.Kept += uint64(ev.Kept)
		if !ev.Newest.IsZero() {
			c.st.Lag = max(ev.Time.Sub(ev.Newest), 0)
			c.st.LagAt = ev.Time
		}
	case BatchPushed:
		c.st.Batches++
	case OpApplied:
		c.kind(ev.Op.Kind).Pushed++
	case OpFailed:
		ks := c.kind(ev.Op.Kind)
		ks.Failed++
		if ev.Dead {
			ks.Dead++
		}
	case ConflictDetected:
		c.kind(ev.Conflict.Kind).Conflicts++
	case ConflictResolved:
		c.kind(ev.Conflict.Kind).Resolved++
	case ConflictDeferred:
		c.kind(ev.Conflict.Kind).Deferred++
	}
}

// Stats returns the replica's figures: the outbox, read from the store
// now, and the counters of what the engine has done since it was created.
func (e *Engine) Stats(ctx context.Context) (EngineStats, error) {
	outbox, err := e.Pending(ctx)
	if err != nil {
		return EngineStats{}, err
	}
	c := &e.counters
	c.mu.Lock()
	st := c.st
	st.Kinds = make(map[string]EngineKindStats, len(c.kinds))
	for k, ks := range c.kinds {
		st.Kinds[k] = *ks
	}
	c.mu.Unlock()
	for _, k := range e.order {
		if _, ok := st.Kinds[k]; !ok {
			st.Kinds[k] = EngineKindStats{}
		}
	}
	st.Outbox = outbox
	return st, nil
}
