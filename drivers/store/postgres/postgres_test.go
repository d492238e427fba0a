package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/internal/bunstore"
	"github.com/offsync/offsync/drivers/store/postgres"
	"github.com/offsync/offsync/internal/pgtest"
)

// open opens a store on dsn, registered with tables, closed after the test.
func open(t *testing.T, dsn string, tables ...core.Table) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn, nil)
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

// recv waits for the next notice; the timeout only guards against a hang.
func recv(t *testing.T, ch <-chan core.Notice) core.Notice {
	t.Helper()
	select {
	case n, ok := <-ch:
		if !ok {
			t.Fatal("notice channel closed")
		}
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("no notice")
	}
	return core.Notice{}
}

var errRollback = errors.New("roll back")

func TestAnnounceReachesAnotherInstanceOnlyOnCommit(t *testing.T) {
	dsn := pgtest.New(t)
	a, b := open(t, dsn), open(t, dsn)
	ch, err := b.Listen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	v := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	announce := func(n core.Notice, fail error) error {
		return a.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			if err := a.Announce(ctx, n); err != nil {
				return err
			}
			return fail
		})
	}
	n1 := core.Notice{Kind: "todo", UpdatedAt: v, ID: "a"}
	if err := announce(n1, nil); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch); got != n1 {
		t.Fatalf("got %+v, want %+v", got, n1)
	}
	// Rolled back: never delivered. The committed n3 after it arrives
	// next, and notifications arrive in commit order.
	if err := announce(core.Notice{Kind: "todo", ID: "rolled-back"}, errRollback); !errors.Is(err, errRollback) {
		t.Fatalf("rollback: %v", err)
	}
	n3 := core.Notice{Kind: "project", UpdatedAt: v.Add(time.Microsecond), ID: "p"}
	if err := announce(n3, nil); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch); got != n3 {
		t.Fatalf("after a rolled-back announce got %+v, want %+v", got, n3)
	}
	// Outside a transaction, Announce commits on its own.
	n4 := core.Notice{Kind: "todo"}
	if err := a.Announce(ctx, n4); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch); got != n4 {
		t.Fatalf("got %+v, want %+v", got, n4)
	}
}

func TestAnnounceRefusesANoticeWithoutKind(t *testing.T) {
	s := open(t, pgtest.New(t))
	if err := s.Announce(t.Context(), core.Notice{ID: "x"}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
}

func TestAnnounceOfAHugeIDSendsTheKindAlone(t *testing.T) {
	s := open(t, pgtest.New(t))
	ch, err := s.Listen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 10000) // over NOTIFY's 8000-byte limit
	if err := s.Announce(t.Context(), core.Notice{Kind: "todo", ID: long, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch); got != (core.Notice{Kind: "todo"}) {
		t.Fatalf("got %+v, want the kind alone", got)
	}
}

func TestListenReconnectsWithAGap(t *testing.T) {
	dsn := pgtest.New(t)
	a, b := open(t, dsn), open(t, dsn)
	ch, err := b.Listen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Kill the listener's connection from the server side.
	var killed int
	if err := a.DB().NewRaw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'offsync-listen' AND datname = current_database()`).Scan(t.Context(), &killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listeners, want 1", killed)
	}
	if got := recv(t, ch); !got.Gap {
		t.Fatalf("after a reconnect got %+v, want a gap", got)
	}
	n := core.Notice{Kind: "todo", ID: "after"}
	if err := a.Announce(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ch); got != n {
		t.Fatalf("got %+v, want %+v", got, n)
	}
}

func TestListenEndsWithItsContextAndWithClose(t *testing.T) {
	dsn := pgtest.New(t)
	s := open(t, dsn)
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := s.Listen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range ch { // drains until closed
	}

	s2, err := postgres.Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := s2.Listen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	for range ch2 {
	}
	if _, err := s2.Listen(t.Context()); !errors.Is(err, core.ErrClosed) {
		t.Fatalf("Listen after Close: %v, want ErrClosed", err)
	}
}

func TestOpenRefusesABadDSN(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://%zz", nil)
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
	_, err = core.OpenStore(t.Context(), "postgres", "postgres://127.0.0.1/x", map[string]any{"nope": 1})
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("unknown option: got %v, want ErrInvalid", err)
	}
}

func TestOpenUnreachableServerIsUnavailable(t *testing.T) {
	// A port nobody listens on: a closed listener's.
	c := pgtest.NewCluster(t)
	dsn := c.DSN("postgres")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(t.Context(), dsn, nil)
	if !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

// TestNextVersionUnderConcurrentTransactions: 8 writers on one kind. Each
// transaction, after NextVersion, records its version and how many earlier
// transactions it saw committed. Versions must be distinct, and the one with
// the k-th smallest version must have seen exactly k-1 committed: commit
// order is version order.
func TestNextVersionUnderConcurrentTransactions(t *testing.T) {
	s := open(t, pgtest.New(t), core.Documents("todo"))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // fixed: versions come from last+1µs
	rows := concurrentVersions(t, s, now)
	if first := time.UnixMicro(rows[0].V).UTC(); !first.Equal(now) {
		t.Fatalf("first version %v, want now %v", first, now)
	}
}

// versionRow is what one transaction of concurrentVersions recorded: its
// version and how many transactions it saw committed before it.
type versionRow struct{ V, Seen int64 }

// concurrentVersions runs 8 writers of 25 transactions each on kind "todo"
// of s; each transaction, after NextVersion(now), records its version and
// how many earlier transactions it saw committed. It fails t unless every
// transaction was applied once, the versions are distinct and the one with
// the k-th smallest version saw exactly k-1 committed (commit order is
// version order), and returns the rows in version order.
func concurrentVersions(t *testing.T, s *postgres.Store, now time.Time) []versionRow {
	t.Helper()
	ctx := t.Context()
	if _, err := s.DB().ExecContext(ctx, "CREATE TABLE vlog (v BIGINT NOT NULL, seen BIGINT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for range each {
				err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
					v, err := tx.NextVersion(ctx, "todo", now)
					if err != nil {
						return err
					}
					_, err = bunstore.Bun(tx).ExecContext(ctx,
						"INSERT INTO vlog (v, seen) SELECT ?, count(*) FROM vlog", v.UnixMicro())
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var rows []versionRow
	if err := s.DB().NewRaw("SELECT v, seen FROM vlog ORDER BY v").Scan(ctx, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != writers*each {
		t.Fatalf("%d rows, want %d (each transaction applied once)", len(rows), writers*each)
	}
	for i, r := range rows {
		if i > 0 && r.V <= rows[i-1].V {
			t.Fatalf("duplicate version %d", r.V)
		}
		if r.Seen != int64(i) {
			t.Fatalf("transaction with version #%d saw %d committed before it: commit order != version order", i, r.Seen)
		}
	}
	return rows
}

// TestNextVersionWaitsForTheHolder is the deterministic half: while one
// transaction holds the kind's lock, another's NextVersion waits, and after
// the first commits it continues from the first's version.
func TestNextVersionWaitsForTheHolder(t *testing.T) {
	s := open(t, pgtest.New(t), core.Documents("todo"), core.Documents("other"))
	ctx := t.Context()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	release := make(chan struct{})
	held := make(chan time.Time)
	first := make(chan error, 1)
	go func() {
		first <- s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			v, err := tx.NextVersion(ctx, "todo", now)
			if err != nil {
				return err
			}
			held <- v
			<-release
			return nil
		})
	}()
	v1 := <-held
	second := make(chan time.Time, 1)
	secondErr := make(chan error, 1)
	go func() {
		secondErr <- s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			v, err := tx.NextVersion(ctx, "todo", now)
			second <- v
			return err
		})
	}()
	// Another kind is not blocked.
	if err := s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
		_, err := tx.NextVersion(ctx, "other", now)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitForLockWaiter(t, s, second)
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-secondErr; err != nil {
		t.Fatal(err)
	}
	if v2 := <-second; !v2.Equal(v1.Add(time.Microsecond)) {
		t.Fatalf("second version %v, want %v", v2, v1.Add(time.Microsecond))
	}
}

func TestStoreDriverIsRegistered(t *testing.T) {
	if !slices.Contains(core.StoreDrivers(), "postgres") {
		t.Fatalf("store drivers %v lack postgres", core.StoreDrivers())
	}
	dsn := pgtest.New(t)
	st, err := core.OpenStore(t.Context(), "postgres", dsn, map[string]any{"max_open_conns": 4, "channel": "x"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok := st.(core.Notifier); !ok {
		t.Fatal("opened store is not a core.Notifier")
	}
}

// TestWriteReadWaitsForAWriterOfTheKind: in a write transaction, reading a
// kind takes its lock, so two authority writers cannot both read the same
// version of a record (at READ COMMITTED that would let both pass the base
// check, and the later silently overwrite the earlier).
func TestWriteReadWaitsForAWriterOfTheKind(t *testing.T) {
	s := open(t, pgtest.New(t), core.Documents("todo"))
	ctx := t.Context()
	read := make(chan struct{})
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			if _, err := tx.Get(ctx, "todo", "x"); !errors.Is(err, core.ErrNotFound) {
				return fmt.Errorf("first Get: %v, want ErrNotFound", err)
			}
			close(read)
			<-release
			v, err := tx.NextVersion(ctx, "todo", time.Now())
			if err != nil {
				return err
			}
			return tx.Put(ctx, core.Record{Kind: "todo", ID: "x", UpdatedAt: v, Data: []byte(`{"by":"first"}`)})
		})
	}()
	<-read
	got := make(chan core.Record, 1)
	second := make(chan error, 1)
	go func() {
		second <- s.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			rec, err := tx.Get(ctx, "todo", "x")
			got <- rec
			return err
		})
	}()
	waitForLockWaiter(t, s, got)
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatalf("second Get after the first committed: %v", err)
	}
	if rec := <-got; string(rec.Data) != `{"by":"first"}` {
		t.Fatalf("second read %s, want the first writer's row", rec.Data)
	}
	// Read transactions never wait.
	if err := s.View(ctx, func(ctx context.Context, tx core.Tx) error {
		_, err := tx.Get(ctx, "todo", "x")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// waitForLockWaiter returns once one backend of the test database waits on a
// lock; early fails the test if the blocked side finished instead.
func waitForLockWaiter[T any](t *testing.T, s *postgres.Store, early <-chan T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // guards against a hang only
	for {
		var waiting int
		if err := s.DB().NewRaw(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(t.Context(), &waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 1 {
			return
		}
		select {
		case v := <-early:
			t.Fatalf("returned %v while another transaction held the kind's lock", v)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no transaction waited on the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
