package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/postgres"
	"github.com/offsync/offsync/internal/pgtest"
)

// openOpts opens a store on dsn with opts, registered with tables.
func openOpts(t *testing.T, dsn string, opts *postgres.Options, tables ...core.Table) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if err := s.Register(t.Context(), tables...); err != nil {
		t.Fatal(err)
	}
	return s
}

// listeners counts the LISTEN connections open on dsn's database.
func listeners(t *testing.T, s *postgres.Store) int {
	t.Helper()
	var n int
	if err := s.DB().NewRaw(`SELECT count(*) FROM pg_stat_activity
		WHERE application_name = 'offsync-listen' AND datname = current_database()`).Scan(t.Context(), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPollNotifierSeesACommittedWrite: with notify poll, Listen opens no
// LISTEN connection and Announce sends no NOTIFY (a listening store hears
// nothing); a write committed by another store after Listen returned is
// announced with its kind and version, a rolled-back one is not.
func TestPollNotifierSeesACommittedWrite(t *testing.T) {
	dsn := pgtest.New(t)
	notes := core.Documents("note")
	poller := openOpts(t, dsn, &postgres.Options{Notify: postgres.NotifyPoll, PollInterval: 20 * time.Millisecond}, notes)
	writer := openOpts(t, dsn, &postgres.Options{Notify: postgres.NotifyPoll}, notes)
	if !poller.Polling() || !writer.Polling() {
		t.Fatal("notify poll: Polling() is false")
	}
	ch, err := poller.Listen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n := listeners(t, poller); n != 0 {
		t.Fatalf("%d LISTEN connections in poll mode, want 0", n)
	}
	// A listen-mode store on the same channel hears no NOTIFY from Announce.
	listening := openOpts(t, dsn, &postgres.Options{Notify: postgres.NotifyListen}, notes)
	heard, err := listening.Listen(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	ctx := t.Context()
	write := func(id string, commit bool) time.Time {
		var v time.Time
		err := writer.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			var err error
			if v, err = tx.NextVersion(ctx, "note", time.Now()); err != nil {
				return err
			}
			if err := tx.Put(ctx, core.Record{Kind: "note", ID: id, UpdatedAt: v, Data: []byte(`{}`)}); err != nil {
				return err
			}
			if err := writer.Announce(ctx, core.Notice{Kind: "note", ID: id, UpdatedAt: v}); err != nil {
				return err
			}
			if !commit {
				return errRollback
			}
			return nil
		})
		if commit && err != nil || !commit && !errors.Is(err, errRollback) {
			t.Fatalf("write %s: %v", id, err)
		}
		return v
	}
	write("gone", false)
	v := write("kept", true)
	if got := recv(t, ch); got.Kind != "note" || !got.UpdatedAt.Equal(v) || got.Gap {
		t.Fatalf("poller got %+v, want note at %v (the committed write, not the rolled-back one)", got, v)
	}
	select {
	case n := <-heard:
		t.Fatalf("a LISTEN store heard %+v from a polling store's Announce", n)
	default:
	}
}

// TestTwoInstancesFanOutByPolling is the fan-out across two authority
// instances with LISTEN/NOTIFY unused: both poll the kinds' versions.
// Replica B, in realtime against instance 2 only, pulls what replica A
// pushed through instance 1.
func TestTwoInstancesFanOutByPolling(t *testing.T) {
	t.Parallel()
	fanOutAcrossInstances(t, &postgres.Options{Notify: postgres.NotifyPoll, PollInterval: 50 * time.Millisecond})
}

// TestNotifyAutoListensOnPostgres: the default mode probes LISTEN at Open;
// Postgres has it, so the store listens.
func TestNotifyAutoListensOnPostgres(t *testing.T) {
	s := openOpts(t, pgtest.New(t), nil)
	if s.Polling() {
		t.Fatal("notify auto polls on Postgres, which has LISTEN/NOTIFY")
	}
}

func TestNotifyOptionsChecked(t *testing.T) {
	dsn := pgtest.New(t)
	for _, o := range []*postgres.Options{{Notify: "smoke"}, {PollInterval: -time.Second}, {RetryAttempts: -1}} {
		if _, err := postgres.Open(t.Context(), dsn, o); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("Open(%+v): %v, want ErrInvalid", o, err)
		}
	}
	for _, m := range []map[string]any{{"notify": 3}, {"poll_interval": "soon"}, {"retry_attempts": "many"}} {
		if _, err := core.OpenStore(t.Context(), "postgres", dsn, m); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("options %v: %v, want ErrInvalid", m, err)
		}
	}
	s, err := core.OpenStore(t.Context(), "postgres", dsn, map[string]any{"notify": "poll", "poll_interval": "100ms", "retry_attempts": 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.(*postgres.Store).Polling() {
		t.Fatal(`notify: poll from a config does not poll`)
	}
}
