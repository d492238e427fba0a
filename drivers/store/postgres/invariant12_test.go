package postgres_test

import (
	"testing"

	"github.com/offsync/offsync/internal/feedrace"
	"github.com/offsync/offsync/internal/pgtest"
	"github.com/offsync/offsync/server"
)

// feedConfig is the invariant 12 scenario on Postgres, across several
// authority instances: eight writers (writer w through instance w%4, each
// instance on a store and connection pool of its own) and a puller whose
// pages go through the instances in turn. One clock serves every instance, so
// that the broken variant's early stamps are distinct and ordered across them.
func feedConfig(t *testing.T, broken bool) feedrace.Config {
	dsn := pgtest.New(t)
	return feedrace.Config{
		Writers: 8, PerWriter: 30, Instances: 4, Clock: &tickClock{}, Broken: broken,
		New: func(t *testing.T, opts server.Options) *server.Service { return newInstance(t, dsn, opts) },
	}
}

func TestInvariant12_CursorNeverSkipsARowAcrossInstances(t *testing.T) {
	t.Parallel()
	cfg := feedConfig(t, false)
	run := feedrace.Run(t, cfg)
	feedrace.RequireExactlyOnce(t, cfg, run, cfg.Writers*cfg.PerWriter/7)
}

// The negative control: authorities that read the clock before taking the
// kind's lock must lose rows, or the test above proves nothing.
func TestInvariant12_NegativeControl_StampBeforeLockIsCaught(t *testing.T) {
	t.Parallel()
	feedrace.RequireCaught(t, feedrace.Run(t, feedConfig(t, true)))
}
