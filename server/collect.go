package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/offsync/offsync/core"
)

// Defaults of tombstone collection.
const (
	// DefaultTombstoneRetention is the server config's default retention
	// of tombstones (server.tombstone_retention). Options.TombstoneRetention
	// itself defaults to zero: keep forever.
	DefaultTombstoneRetention = 90 * 24 * time.Hour
	// DefaultTombstoneBatch is the default of Options.TombstoneBatch.
	DefaultTombstoneBatch = 1000
)

// collector is the state of a Service's tombstone collection.
type collector struct {
	mu sync.Mutex // one pass at a time
}

func collectDefaults(o *Options) error {
	if o.TombstoneRetention < 0 || o.TombstoneBatch < 0 {
		return fmt.Errorf("server: %w: negative tombstone retention or batch", core.ErrInvalid)
	}
	if o.TombstoneBatch == 0 {
		o.TombstoneBatch = DefaultTombstoneBatch
	}
	return nil
}

// collectEvery is how often the background collection runs: a tenth of
// the retention, between a minute and an hour.
func collectEvery(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Minute), time.Hour)
}

// startCollector runs Collect in the background, now and then every
// collectEvery by the Service's clock, until Close.
func (s *Service) startCollector() {
	if s.opts.TombstoneRetention <= 0 {
		return
	}
	every := collectEvery(s.opts.TombstoneRetention)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			if _, err := s.Collect(s.ctx); err != nil && s.ctx.Err() == nil {
				s.log.Error("offsync: tombstone collection failed", "err", err)
			}
			t := s.clock.NewTimer(every)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C():
			}
		}
	}()
}

// Collected is what one Collect did to a kind.
type Collected struct {
	Kind    string
	Removed int       // tombstones removed
	Batches int       // write transactions that removed some
	Horizon time.Time // the kind's horizon after it (zero: nothing ever collected)
}

// Collect removes the tombstones older than Options.TombstoneRetention (by
// the Service's Clock) of kinds (every kind the Service serves when none is
// given; a kind it does not serve is skipped), oldest first, in
// write transactions of at most Options.TombstoneBatch rows each: a push
// of a kind waits for one batch at most, never for a whole pass. Each
// transaction moves the kind's horizon to the newest version it removed;
// a pull whose cursor is older than the horizon is then answered
// core.ErrResetRequired. A Service with a retention runs it in the
// background (from New until Close); it is exported for tools and tests.
// With no retention it does nothing. A store whose transactions are not a
// core.TombstoneTx is core.ErrInvalid.
func (s *Service) Collect(ctx context.Context, kinds ...string) ([]Collected, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	if s.opts.TombstoneRetention <= 0 {
		return nil, nil
	}
	s.collector.mu.Lock()
	defer s.collector.mu.Unlock()
	before := s.clock.Now().Add(-s.opts.TombstoneRetention)
	var out []Collected
	for _, kind := range s.servedKinds() {
		if len(kinds) > 0 && !slices.Contains(kinds, kind) {
			continue
		}
		c := Collected{Kind: kind}
		due, err := s.collectDue(ctx, kind, before, &c)
		if err != nil {
			return out, fmt.Errorf("server: collect tombstones of %q: %w", kind, err)
		}
		for due && ctx.Err() == nil {
			var n int
			err := s.store.Update(ctx, func(ctx context.Context, tx core.Tx) error {
				tt, ok := tx.(core.TombstoneTx)
				if !ok {
					return fmt.Errorf("%w: the store cannot collect tombstones (its transactions are no core.TombstoneTx)", core.ErrInvalid)
				}
				var err error
				n, c.Horizon, err = tt.CollectTombstones(ctx, kind, before, s.opts.TombstoneBatch)
				return err
			})
			if err != nil {
				return out, fmt.Errorf("server: collect tombstones of %q: %w", kind, err)
			}
			if n > 0 {
				c.Removed += n
				c.Batches++
				if s.opts.Hooks != nil && s.opts.Hooks.AfterCollect != nil {
					s.opts.Hooks.AfterCollect(kind, n)
				}
			}
			if n < s.opts.TombstoneBatch {
				break
			}
		}
		if c.Removed > 0 {
			s.log.Info("offsync: tombstones collected", "kind", kind, "removed", c.Removed,
				"batches", c.Batches, "horizon", core.FormatTime(c.Horizon), "older_than", core.FormatTime(before))
		}
		out = append(out, c)
	}
	return out, ctx.Err()
}

// collectDue reports whether kind has a tombstone older than before, and
// reads its horizon into c, in a read transaction: a kind with nothing to
// collect costs no write lock.
func (s *Service) collectDue(ctx context.Context, kind string, before time.Time, c *Collected) (bool, error) {
	due := false
	err := s.store.View(ctx, func(ctx context.Context, tx core.Tx) error {
		tt, ok := tx.(core.TombstoneTx)
		if !ok {
			return fmt.Errorf("%w: the store cannot collect tombstones (its transactions are no core.TombstoneTx)", core.ErrInvalid)
		}
		oldest, err := tt.OldestTombstone(ctx, kind)
		if err != nil {
			return err
		}
		due = !oldest.IsZero() && oldest.Before(before)
		c.Horizon, err = tt.Horizon(ctx, kind)
		return err
	})
	return due, err
}

// servedKinds returns the kinds the Service serves now, sorted.
func (s *Service) servedKinds() []string {
	s.kindMu.Lock()
	defer s.kindMu.Unlock()
	out := make([]string, 0, len(s.kinds))
	for k, ok := range s.kinds {
		if ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// KindStatus is a kind's tombstone state, as Status reports it.
type KindStatus struct {
	Kind       string    `json:"kind"`
	Horizon    time.Time `json:"horizon,omitzero"` // newest version collected; zero: none
	Tombstones int64     `json:"tombstones"`       // tombstones held now
	Oldest     time.Time `json:"oldest,omitzero"`  // UpdatedAt of the oldest tombstone held
}

// Status reports, per kind the Service serves, its horizon and how many
// tombstones the store holds: the admin view of collection. The counts
// read every row of a kind; it is for operators, not for every request.
func (s *Service) Status(ctx context.Context) ([]KindStatus, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	var out []KindStatus
	err := s.store.View(ctx, func(ctx context.Context, tx core.Tx) error {
		tt, ok := tx.(core.TombstoneTx)
		if !ok {
			return fmt.Errorf("%w: the store cannot report tombstones (its transactions are no core.TombstoneTx)", core.ErrInvalid)
		}
		for _, kind := range s.servedKinds() {
			h, err := tt.Horizon(ctx, kind)
			if err != nil {
				return err
			}
			n, err := tt.CountTombstones(ctx, kind)
			if err != nil {
				return err
			}
			oldest, err := tt.OldestTombstone(ctx, kind)
			if err != nil {
				return err
			}
			out = append(out, KindStatus{Kind: kind, Horizon: h, Tombstones: n, Oldest: oldest})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("server: status: %w", err)
	}
	return out, nil
}
