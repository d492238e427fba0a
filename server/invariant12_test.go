package server_test

import (
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/feedrace"
	"github.com/offsync/offsync/server"
)

// feedConfig is the invariant 12 scenario (internal/feedrace) on one SQLite
// authority: four writers of 200 rows each (50 under the race detector) and a
// frozen clock, so that versions are last+1µs and every ordering is decided
// by the locking alone.
func feedConfig(broken bool) feedrace.Config {
	perWriter := 200 // 800 rows: at least 115 full pages of 7
	if raceEnabled {
		perWriter = 50
	}
	return feedrace.Config{
		Writers: 4, PerWriter: perWriter, Clock: core.NewManualClock(t0), Broken: broken,
		New: func(t *testing.T, opts server.Options) *server.Service {
			opts.Tables = []core.Table{core.Documents("item")}
			return newServiceOn(t, newStore(t), &opts)
		},
	}
}

func TestInvariant12_CursorNeverSkipsARowCommittedAfterAPage(t *testing.T) {
	cfg := feedConfig(false)
	minPages := 100
	if raceEnabled {
		minPages = 0 // the smaller race run checks exactly-once only
	}
	feedrace.RequireExactlyOnce(t, cfg, feedrace.Run(t, cfg), minPages)
}

// The negative control: an authority that reads the clock before taking the
// kind's lock must lose rows, or the test above proves nothing.
func TestInvariant12_NegativeControl_StampBeforeLockIsCaught(t *testing.T) {
	feedrace.RequireCaught(t, feedrace.Run(t, feedConfig(true)))
}
