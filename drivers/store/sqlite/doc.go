// Package sqlite is offsync's embedded store: core.Store over SQLite through
// bun and modernc.org/sqlite (pure Go, no cgo).
//
// The database runs in WAL mode. Writes go through one connection whose
// transactions start with BEGIN IMMEDIATE, so a write transaction holds the
// database's write lock from its first statement (the per-kind version lock
// of the authority comes with it); reads (View) use a separate pool of
// read-only connections and never queue behind a writer. Every time is
// stored as INTEGER microseconds since the Unix epoch.
//
// Importing the package registers the store driver "sqlite" with
// core.RegisterStore; its options map may carry "synchronous" ("NORMAL" or
// "FULL") and "busy_timeout" (a duration string or milliseconds).
//
// A Store is safe for concurrent use. Do not start a new Update from inside
// an Update's fn with a context other than the one fn was given: the single
// write connection is busy, and the call would wait forever.
package sqlite
