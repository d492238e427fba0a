package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/offsync/offsync/core"
)

// probeListen decides NotifyAuto at Open: it runs LISTEN (then UNLISTEN) on
// a connection of the pool, and polls from then on if the database refuses
// the statement itself (CockroachDB has no LISTEN/NOTIFY). A failure to
// reach the database is an error, not a reason to poll.
func (s *Store) probeListen(ctx context.Context) error {
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		return fmt.Errorf("offsync: postgres: connect: %w: %v", core.ErrUnavailable, err)
	}
	defer conn.Close()
	ch := pgx.Identifier{s.channel}.Sanitize()
	_, err = conn.ExecContext(ctx, "LISTEN "+ch)
	if err == nil {
		_, err = conn.ExecContext(ctx, "UNLISTEN "+ch)
	}
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe) && (pe.Code == "0A000" || pe.Code == "42601"): // feature not supported, syntax error
		s.polling.Store(true)
		s.logger().Info("offsync: postgres: the database has no LISTEN/NOTIFY; notices are polled",
			"interval", s.poll.String(), "err", pe.Message)
		return nil
	default:
		return fmt.Errorf("offsync: postgres: probe LISTEN: %w: %v", core.ErrUnavailable, err)
	}
}

// Polling reports whether Listen polls the kinds' versions (Options.Notify
// is NotifyPoll, or NotifyAuto found no LISTEN/NOTIFY) rather than LISTEN.
func (s *Store) Polling() bool { return s.polling.Load() }

// readVersions reads every kind's last version (microseconds).
func (s *Store) readVersions(ctx context.Context) (map[string]int64, error) {
	rows, err := s.DB().QueryContext(ctx, "SELECT kind, last FROM offsync_versions")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var last int64
		if err := rows.Scan(&k, &last); err != nil {
			return nil, err
		}
		out[k] = last
	}
	return out, rows.Err()
}

// pollLoop reads the kinds' versions every s.poll and sends a Notice for
// each kind whose version moved past seen (the versions read when Listen
// began, so that a write committed after Listen returned is always
// announced). After reads that failed, the next one that succeeds sends a
// Gap first, as a reconnecting listener does: nothing is missed, since the
// versions compare with the last ones read, but the caller learns the
// notices were late.
func (s *Store) pollLoop(ctx context.Context, seen map[string]int64, ch chan<- core.Notice) {
	tick := time.NewTicker(s.poll)
	defer tick.Stop()
	failed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now, err := s.readVersions(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failed = true
			continue
		}
		if failed {
			failed = false
			if !send(ctx, ch, core.Notice{Gap: true}) {
				return
			}
		}
		for k, last := range now {
			if last <= seen[k] {
				continue
			}
			seen[k] = last
			if !send(ctx, ch, core.Notice{Kind: k, UpdatedAt: time.UnixMicro(last).UTC()}) {
				return
			}
		}
	}
}

func (s *Store) logger() *slog.Logger {
	if s.log != nil {
		return s.log
	}
	return slog.Default()
}
