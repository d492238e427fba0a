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
// reconnecting after a failure with a Notice marked Gap.
//
// Times are BIGINT microseconds since the Unix epoch, document data is
// stored as json (kept byte for byte), and write transactions run at READ
// COMMITTED, read transactions (View) at REPEATABLE READ, read only.
package postgres
