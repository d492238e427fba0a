package core

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is something the engine did, for a UI, a log or metrics. The
// concrete types are the ones below; switch on them.
type Event interface {
	EventTime() time.Time
}

// At is embedded in every event.
type At struct{ Time time.Time }

// EventTime implements Event.
func (a At) EventTime() time.Time { return a.Time }

type (
	// SyncStarted opens a Sync; nil kinds mean every kind.
	SyncStarted struct {
		At
		PushKinds, PullKinds []string
	}
	// SyncCompleted closes a Sync with its figures.
	SyncCompleted struct {
		At
		Stats Stats
	}
	// PagePulled reports one applied page.
	PagePulled struct {
		At
		Kind                   string
		Upserts, Deletes, Kept int
		Remaining              int64     // -1 when unknown
		Newest                 time.Time // the version (UpdatedAt) of the page's last record
	}
	// BatchPushed reports one Push call.
	BatchPushed struct {
		At
		Ops, Applied, Conflicts, Failed int
		Resolution                      bool // a resolution push
	}
	// OpApplied reports an op the authority applied.
	OpApplied struct {
		At
		Op     Op
		Record Record
	}
	// OpFailed reports an op refused or failed; Dead says it went to the
	// dead letters, WillRetry that it will be pushed again.
	OpFailed struct {
		At
		Op        Op
		Err       error
		Dead      bool
		WillRetry bool
	}
	// ConflictDetected reports a conflict and the strategy asked.
	ConflictDetected struct {
		At
		Conflict Conflict
	}
	// ConflictResolved reports a resolution; Data is the resulting business
	// data (nil when the record ends deleted or missing).
	ConflictResolved struct {
		At
		Conflict   Conflict
		Resolution Resolution
		Data       map[string]any
	}
	// ConflictDeferred reports a conflict put in the inbox.
	ConflictDeferred struct {
		At
		Conflict Conflict
	}
	// DataMerged reports a merge: the local fields, the server's and the result.
	DataMerged struct {
		At
		Kind, ID              string
		Local, Server, Merged map[string]any
	}
	// ResyncStarted reports a full pull of a kind from the start.
	ResyncStarted struct {
		At
		Kind      string
		ClearData bool
		Resumed   bool
		Reason    string
	}
	// SyncError reports a failure with its category and whether the engine
	// will retry by itself.
	SyncError struct {
		At
		Kind      string
		Err       error
		Category  Category
		WillRetry bool
	}
)

// Stats are the figures of one Sync.
type Stats struct {
	Pushed    int // ops applied by the authority
	Pulled    int // records applied from pulls
	Kept      int // pulled records left alone because of pending ops
	Conflicts int
	Resolved  int
	Errors    int
	Stuck     int // ops left in the outbox that this sync could not push (deferred, dead, backing off, paused)
}

// Subscription receives the engine's events on C. Each subscription has its
// own buffer; when it is full, events are dropped for that subscription only
// (counted by Dropped), so a slow reader never blocks Sync.
type Subscription struct {
	C       <-chan Event
	c       chan Event
	dropped atomic.Int64
	hub     *hub
	once    sync.Once
}

// Dropped returns how many events did not fit the buffer.
func (s *Subscription) Dropped() int64 { return s.dropped.Load() }

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.hub.mu.Lock()
		delete(s.hub.subs, s)
		s.hub.mu.Unlock()
		close(s.c)
	})
}

type hub struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

func (h *hub) subscribe(buffer int) *Subscription {
	if buffer < 1 {
		buffer = 1
	}
	c := make(chan Event, buffer)
	s := &Subscription{C: c, c: c, hub: h}
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[*Subscription]struct{}{}
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) emit(e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.c <- e:
		default:
			s.dropped.Add(1)
		}
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	subs := make([]*Subscription, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}
