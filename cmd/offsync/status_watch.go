package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/offsync/offsync/core"
)

var (
	statusWatch    bool
	statusInterval time.Duration
	statusCount    int
)

// clearScreen moves the cursor home and clears the terminal: each frame of
// the watch is drawn in place.
const clearScreen = "\x1b[H\x1b[2J"

// watchState follows a replica from one refresh to the next.
type watchState struct {
	started  time.Time
	prev     *statusReport
	lastSeen time.Time // the last refresh that saw a sync act; zero: none
	lastWhat string    // what it saw
}

// observe compares rep, read at now, with the previous refresh: a kind's
// cursor that moved, or ops that left the outbox (sent and answered), are
// the traces a sync leaves in the database. It reports whether anything
// changed.
func (w *watchState) observe(now time.Time, rep statusReport) bool {
	prev := w.prev
	w.prev = &rep
	if prev == nil {
		return true
	}
	var seen []string
	before := map[string]kindStatus{}
	for _, ks := range prev.Kinds {
		before[ks.Kind] = ks
	}
	for _, ks := range rep.Kinds {
		if ks.Cursor != nil && !reflect.DeepEqual(ks.Cursor, before[ks.Kind].Cursor) {
			seen = append(seen, ks.Kind+"'s cursor moved")
		}
	}
	waiting := func(r *statusReport) int {
		return r.Outbox[string(core.StatePending)] + r.Outbox[string(core.StateInFlight)]
	}
	if n := waiting(prev) - waiting(&rep); n > 0 {
		seen = append(seen, fmt.Sprintf("%d %s left the outbox", n, plural(n, "op", "ops")))
	}
	if len(seen) > 0 {
		w.lastSeen, w.lastWhat = now, strings.Join(seen, ", ")
	}
	return !reflect.DeepEqual(*prev, rep)
}

// lastSync says when a sync was last seen.
func (w *watchState) lastSync() string {
	if w.lastSeen.IsZero() {
		return "none seen since the watch started at " + clock(w.started)
	}
	return clock(w.lastSeen) + " (" + w.lastWhat + ")"
}

func clock(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// watchLine is a refresh of `status --watch --json`, one per line.
type watchLine struct {
	At string `json:"at"`
	statusReport
	LastSyncSeen string `json:"last_sync_seen,omitempty"` // zero: none yet
	Seen         string `json:"seen,omitempty"`           // what it saw
}

// watchStatus is `offsync status --watch`: the status again every
// --interval, until interrupted or --count refreshes.
func watchStatus(cmd *cobra.Command) error {
	if statusInterval <= 0 {
		return usageErrorf("--interval must be positive, got %v", statusInterval)
	}
	if statusCount < 0 {
		return usageErrorf("--count must be 0 (until interrupted) or more, got %d", statusCount)
	}
	ctx, stop := signalContext(cmd)
	defer stop()
	cfg, eng, err := openLocalReplica(ctx)
	if err != nil {
		return err
	}
	defer eng.Close()
	out := cmd.OutOrStdout()
	tty := isTerminal(out)
	w := &watchState{started: time.Now()}
	tick := time.NewTicker(statusInterval)
	defer tick.Stop()
	for n := 1; ; n++ {
		rep, err := collectStatus(ctx, eng)
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted mid-read
			}
			return err
		}
		now := time.Now()
		changed := w.observe(now, rep)
		switch {
		case statusJSON:
			if changed {
				line := watchLine{At: clock(now), statusReport: rep, Seen: w.lastWhat}
				if !w.lastSeen.IsZero() {
					line.LastSyncSeen = clock(w.lastSeen)
				}
				b, err := json.Marshal(line)
				if err != nil {
					return err
				}
				if _, err := fmt.Fprintf(out, "%s\n", b); err != nil {
					return err
				}
			}
		case tty:
			if err := writeFrame(out, now, cfg.Store.DSN, rep, w); err != nil {
				return err
			}
		case changed:
			if err := writePlain(out, now, rep, w); err != nil {
				return err
			}
		}
		if statusCount > 0 && n >= statusCount {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // Ctrl-C ends a watch; it is no failure
		case <-tick.C:
		}
	}
}

// writeFrame draws a refresh on a terminal, in place of the previous one.
func writeFrame(out io.Writer, now time.Time, store string, rep statusReport, w *watchState) error {
	var frame strings.Builder
	frame.WriteString(clearScreen)
	fmt.Fprintf(&frame, "offsync status --watch  %s  every %v  %s  (Ctrl-C stops)\n\n",
		store, statusInterval, now.Format(time.TimeOnly))
	if err := writeStatusTable(&frame, rep); err != nil {
		return err
	}
	fmt.Fprintf(&frame, "last sync seen: %s\n", w.lastSync())
	_, err := io.WriteString(out, frame.String())
	return err
}

// writePlain prints a refresh as plain lines, each with its time: one per
// kind, then the totals and the last sync seen.
func writePlain(out io.Writer, now time.Time, rep statusReport, w *watchState) error {
	at := clock(now)
	var b strings.Builder
	for _, ks := range rep.Kinds {
		fmt.Fprintf(&b, "%s %s: pending %d, unanswered %d, deferred %d, dead %d, conflicts %d, cursor %s\n", at, ks.Kind,
			ks.Outbox[string(core.StatePending)], ks.Outbox[string(core.StateInFlight)],
			ks.Outbox[string(core.StateDeferred)], ks.Outbox[string(core.StateDead)], ks.Conflicts, ks.cursorText())
	}
	fmt.Fprintf(&b, "%s outbox: %d ops; conflicts: %d; dead letters: %d; last sync seen: %s\n", at,
		rep.total(), rep.Conflicts, rep.DeadLetters, w.lastSync())
	_, err := io.WriteString(out, b.String())
	return err
}

func init() {
	statusCmd.Flags().BoolVarP(&statusWatch, "watch", "w", false, "keep reading the replica every --interval (Ctrl-C stops)")
	statusCmd.Flags().DurationVar(&statusInterval, "interval", 2*time.Second, "with --watch: time between two reads")
	statusCmd.Flags().IntVar(&statusCount, "count", 0, "with --watch: stop after this many reads (0: until interrupted)")
}
