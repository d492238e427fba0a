// Package postgres is offsync's PostgreSQL store: the shared bun store
// (drivers/store/internal/bunstore) over bun's pgdialect and pgx's
// database/sql driver, registered as the store driver "postgres".
//
// It serves both roles, but is meant for the authority: several server
// instances may share one database. NextVersion takes a per-kind row lock
// (offsync_versions ... FOR UPDATE) inside the write transaction, so versions
// of a kind strictly increase in commit order across instances. A write
// transaction also takes a kind's lock before its first read of the kind,
// and implements server.KindLocker (LockKinds), with which the server locks
// all the kinds of a push batch up front, in sorted order, so two batches
// touching kinds in opposite orders cannot deadlock. The Store is a
// core.Notifier: Announce sends a NOTIFY on the channel "offsync"
// inside the write transaction (delivered only if it commits), and Listen
// streams every instance's announcements over a dedicated connection,
// reconnecting after a failure with a Notice marked Gap. Where the database
// has no LISTEN/NOTIFY (CockroachDB), Options.Notify = NotifyPoll (or the
// default NotifyAuto, which probes LISTEN at Open) makes Listen read the
// kinds' versions every PollInterval and announce the kinds that moved.
//
// Every kind's version row is created by Register, so the lock never falls
// on a missing row. A write transaction that fails with a serialization
// failure (SQLSTATE 40001) or as a deadlock's victim (40P01) is rolled back
// and run again with a capped, jittered backoff, at most
// Options.RetryAttempts times, its later runs first locking offsync_versions
// against starvation; fn given to Update must therefore be safe to run more
// than once. This is what lets the store run at REPEATABLE READ or
// SERIALIZABLE (default_transaction_isolation=serializable in the DSN), as
// distributed SQL engines demand.
//
// Times are BIGINT microseconds since the Unix epoch, document data is
// stored as json (kept byte for byte), and write transactions run at READ
// COMMITTED, read transactions (View) at REPEATABLE READ, read only.
package postgres
