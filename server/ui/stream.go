package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// Change is one change of the feed, as a live stream sends it.
type Change struct {
	Kind    string    `json:"kind"`
	ID      string    `json:"id"`
	Version time.Time `json:"version,omitzero"`
	Deleted bool      `json:"deleted,omitempty"`
}

// feedPage is how many records one read of the feed takes, and feedPages
// how many reads follow one notice before the rest is skipped.
const (
	feedPage  = 100
	feedPages = 10
)

// serveEvents is the live stream: a snapshot at once, then after each
// notice the changes it announces and a new snapshot (several notices in
// a burst share one), and a snapshot every interval. It is the
// server-sent-events format, read by the page through fetch() so that
// the token travels in a header.
func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	// The stream ends with the administrator's token (server.StreamContext)
	// and with the server.
	ctx, cancel := server.StreamContext(r.Context())
	defer cancel()
	stop := context.AfterFunc(d.ctx, cancel) // the server shuts down
	defer stop()
	ch, err := d.svc.Subscribe(ctx, nil)
	if err != nil {
		d.log.Warn("offsync ui: subscribe", "err", err)
		http.Error(w, "the subscription failed; see the server's log", http.StatusInternalServerError)
		return
	}
	rc := http.NewResponseController(w)
	// A stream outlives the listener's read and write timeouts; each write
	// has its own deadline instead.
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	send := func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	var prev *Snapshot
	snapshot := func() error {
		s, err := d.liveSnapshot(ctx)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("offsync ui: snapshot", "err", err)
			}
			return err
		}
		if prev != nil {
			s.Rates = rates(*prev, s)
		}
		prev = &s
		return send("snapshot", s)
	}
	if err := snapshot(); err != nil {
		return
	}
	f := &follower{d: d, start: time.Now(), cursors: map[string]core.Cursor{}}
	tick := time.NewTicker(d.interval)
	defer tick.Stop()
	// A burst of notices is followed by one snapshot, soon after the last.
	burst := time.NewTimer(time.Hour)
	burst.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case n, ok := <-ch:
			if !ok {
				return
			}
			d.changed()
			changes, err := f.follow(ctx, n)
			if err != nil {
				if ctx.Err() == nil {
					d.log.Warn("offsync ui: read the feed", "kind", n.Kind, "err", err)
				}
				return
			}
			for _, c := range changes {
				if err := send("change", c); err != nil {
					return
				}
			}
			burst.Reset(100 * time.Millisecond)
		case <-burst.C:
			if err := snapshot(); err != nil {
				return
			}
			tick.Reset(d.interval)
		case <-tick.C:
			if err := snapshot(); err != nil {
				return
			}
		}
	}
}

// follower turns the notices of one stream into the changes of the feed.
// A notice names the newest change of a kind; the feed read after the
// previous position gives every change in between, even the ones whose
// notices were coalesced for a slow reader.
type follower struct {
	d       *Dashboard
	start   time.Time              // when the stream opened
	cursors map[string]core.Cursor // per kind: the last change sent
}

func (f *follower) follow(ctx context.Context, n core.Notice) ([]Change, error) {
	switch {
	case n.Gap:
		// Notices may have been lost: every kind followed so far is read
		// from its last change (the feed misses nothing).
		var out []Change
		for _, kind := range slices.Sorted(maps.Keys(f.cursors)) {
			changes, err := f.read(ctx, kind, nil)
			if err != nil {
				return nil, err
			}
			out = append(out, changes...)
		}
		return f.last(out), nil
	case n.Kind == "":
		return nil, nil
	}
	cur, known := f.cursors[n.Kind]
	if !known && n.ID == "" {
		// A notice without a position (the administrator's scope of the
		// kind is filtered): the feed is read from a little before the
		// stream opened, so the changes since are listed.
		f.cursors[n.Kind], known = core.Cursor{UpdatedAt: f.start.Add(-time.Second)}, true
	}
	if !known {
		// The first notice of a kind: the change it names.
		c := Change{Kind: n.Kind, ID: n.ID, Version: n.UpdatedAt}
		err := f.d.store.View(ctx, func(ctx context.Context, tx core.Tx) error {
			rec, err := tx.Get(ctx, n.Kind, n.ID)
			switch {
			case errors.Is(err, core.ErrNotFound):
				return nil // collected since
			case err != nil:
				return err
			}
			c.Deleted = rec.Deleted() && rec.UpdatedAt.Equal(n.UpdatedAt)
			return nil
		})
		if err != nil {
			return nil, err
		}
		f.cursors[n.Kind] = core.Cursor{UpdatedAt: n.UpdatedAt, ID: n.ID}
		return []Change{c}, nil
	}
	if n.ID != "" && !cur.Before(n.UpdatedAt, n.ID) {
		return nil, nil // already read
	}
	var until *core.Cursor
	if n.ID != "" {
		until = &core.Cursor{UpdatedAt: n.UpdatedAt, ID: n.ID}
	}
	out, err := f.read(ctx, n.Kind, until)
	return f.last(out), err
}

// read reads the feed of kind after its cursor, at most feedPages pages,
// and moves the cursor to the last change read, or to until when the pages
// ran out before it (the rest is skipped).
func (f *follower) read(ctx context.Context, kind string, until *core.Cursor) ([]Change, error) {
	cur := f.cursors[kind]
	var out []Change
	for range feedPages {
		var recs []core.Record
		err := f.d.store.View(ctx, func(ctx context.Context, tx core.Tx) error {
			var err error
			recs, err = tx.Changes(ctx, core.ChangesQuery{Kind: kind, After: cur, Limit: feedPage})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			out = append(out, Change{Kind: kind, ID: r.ID, Version: r.UpdatedAt, Deleted: r.Deleted()})
			cur = core.Cursor{UpdatedAt: r.UpdatedAt, ID: r.ID}
		}
		if len(recs) < feedPage {
			break
		}
	}
	if until != nil && cur.Before(until.UpdatedAt, until.ID) {
		cur = *until
	}
	f.cursors[kind] = cur
	return out, nil
}

// last keeps the newest changes a stream sends at once.
func (f *follower) last(out []Change) []Change {
	if len(out) > f.d.recent {
		return out[len(out)-f.d.recent:]
	}
	return out
}
