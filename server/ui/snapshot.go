package ui

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// Snapshot is what the dashboard shows at one moment.
type Snapshot struct {
	At time.Time `json:"at"`
	// Kinds are the kinds served, sorted, then any kind the statistics
	// name that is not served (server.OtherKind).
	Kinds []KindView `json:"kinds"`
	// Stats is what the authority has done since it started.
	Stats server.StatsSnapshot `json:"stats"`
	// Rates are measured since the stream's previous snapshot; nil in the
	// first snapshot of a stream and in api/snapshot.
	Rates *Rates `json:"rates,omitempty"`
}

// KindView is a kind's line of the dashboard.
type KindView struct {
	Kind string `json:"kind"`
	// Rows counts the live rows, Tombstones the deleted ones the store
	// still holds; -1 when unknown (the store cannot count them, or the
	// kind is not served).
	Rows       int64     `json:"rows"`
	Tombstones int64     `json:"tombstones"`
	Horizon    time.Time `json:"horizon,omitzero"` // newest tombstone collected
	// Traffic is the kind's pushed ops by answer and pulled rows, over
	// every transport.
	Traffic server.KindStats `json:"traffic"`
}

// Rates are per second.
type Rates struct {
	Seconds    float64 `json:"seconds"`     // the window they were measured over
	PushedOps  float64 `json:"pushed_ops"`  // ops answered, whatever the answer
	PulledRows float64 `json:"pulled_rows"` // rows served by pulls
	Requests   float64 `json:"requests"`    // calls of every method
}

// changeCounter is the store's count of a kind's feed (the SQL stores have
// it); without it the dashboard shows the rows as unknown.
type changeCounter interface {
	CountChanges(ctx context.Context, q core.ChangesQuery) (int64, error)
}

// Snapshot counts the rows and tombstones of every served kind now and
// reads the authority's statistics.
func (d *Dashboard) Snapshot(ctx context.Context) (Snapshot, error) {
	kinds, err := d.count(ctx)
	if err != nil {
		return Snapshot{}, err
	}
	return d.snapshot(kinds), nil
}

// snapshot joins counted kinds with the statistics.
func (d *Dashboard) snapshot(kinds []KindView) Snapshot {
	st := d.svc.Stats()
	s := Snapshot{At: time.Now().UTC(), Stats: st, Kinds: slices.Clone(kinds)}
	listed := map[string]bool{}
	for i := range s.Kinds {
		s.Kinds[i].Traffic = st.Kinds[s.Kinds[i].Kind]
		listed[s.Kinds[i].Kind] = true
	}
	var extra []string
	for k := range st.Kinds {
		if !listed[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(extra)
	for _, k := range extra {
		s.Kinds = append(s.Kinds, KindView{Kind: k, Rows: -1, Tombstones: -1, Traffic: st.Kinds[k]})
	}
	return s
}

// liveSnapshot is a snapshot for a live stream: the counts are shared by
// every stream and taken again only when a change was announced since, or
// when they are older than maxCountAge.
func (d *Dashboard) liveSnapshot(ctx context.Context) (Snapshot, error) {
	d.countMu.Lock()
	defer d.countMu.Unlock()
	d.dirtyMu.Lock()
	dirty := d.dirty
	d.dirtyMu.Unlock()
	if dirty || d.counted == nil || time.Since(d.countedAt) >= maxCountAge {
		if _, err := d.countLocked(ctx); err != nil {
			return Snapshot{}, err
		}
	}
	return d.snapshot(d.counted), nil
}

// changed records that a kind's counts moved.
func (d *Dashboard) changed() {
	d.dirtyMu.Lock()
	d.dirty = true
	d.dirtyMu.Unlock()
}

func (d *Dashboard) count(ctx context.Context) ([]KindView, error) {
	d.countMu.Lock()
	defer d.countMu.Unlock()
	return d.countLocked(ctx)
}

// countLocked counts every served kind (server.Service.Status for the
// kinds, tombstones and horizons, the store's feed count for the rows) and
// keeps the result for the live streams.
func (d *Dashboard) countLocked(ctx context.Context) ([]KindView, error) {
	d.dirtyMu.Lock()
	d.dirty = false // a notice from now on asks for another count
	d.dirtyMu.Unlock()
	status, err := d.svc.Status(ctx)
	if err != nil {
		return nil, err
	}
	kinds := make([]KindView, len(status))
	for i, k := range status {
		kinds[i] = KindView{Kind: k.Kind, Rows: -1, Tombstones: k.Tombstones, Horizon: k.Horizon}
	}
	err = d.store.View(ctx, func(ctx context.Context, tx core.Tx) error {
		cc, ok := tx.(changeCounter)
		tt, _ := tx.(core.TombstoneTx) // Status needed it
		if !ok || tt == nil {
			return nil
		}
		// The feed holds live rows and tombstones: both are counted again
		// here, in one transaction, so that a delete committed after
		// Status read the tombstones is not counted as a live row.
		for i := range kinds {
			all, err := cc.CountChanges(ctx, core.ChangesQuery{Kind: kinds[i].Kind})
			if err != nil {
				return fmt.Errorf("count the rows of %s: %w", kinds[i].Kind, err)
			}
			dead, err := tt.CountTombstones(ctx, kinds[i].Kind)
			if err != nil {
				return fmt.Errorf("count the tombstones of %s: %w", kinds[i].Kind, err)
			}
			kinds[i].Rows, kinds[i].Tombstones = max(all-dead, 0), dead
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ui: %w", err)
	}
	d.counted, d.countedAt = kinds, time.Now()
	return slices.Clone(kinds), nil
}

// rates measures the rates from prev to cur.
func rates(prev, cur Snapshot) *Rates {
	secs := cur.At.Sub(prev.At).Seconds()
	if secs <= 0 {
		return nil
	}
	pushed, pulled, requests := totals(cur.Stats)
	p0, l0, r0 := totals(prev.Stats)
	per := func(a, b uint64) float64 {
		if a < b {
			return 0
		}
		return float64(a-b) / secs
	}
	return &Rates{Seconds: secs, PushedOps: per(pushed, p0), PulledRows: per(pulled, l0), Requests: per(requests, r0)}
}

func totals(st server.StatsSnapshot) (pushed, pulled, requests uint64) {
	for _, k := range st.Kinds {
		pushed += k.Pushed()
		pulled += k.Pulled
	}
	for _, t := range st.Transports {
		requests += t.Requests.Total()
	}
	return pushed, pulled, requests
}
