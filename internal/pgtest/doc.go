// Package pgtest gives tests a throwaway PostgreSQL database.
//
// New(t) returns the DSN of a fresh, empty database, dropped when the test
// ends. The databases live in one cluster per test binary, started on first
// use from a data directory copied from a template that initdb makes once per
// process; NewCluster(t) starts a cluster of the test's own when a test needs
// a whole server (to stop it, or to change its settings).
//
// When OFFSYNC_POSTGRES_DSN names a server, New creates its databases there
// instead and no cluster is started. Without PostgreSQL server binaries (in
// /usr/lib/postgresql/*/bin, the newest, or on PATH) New and NewCluster skip
// the test with a loud reason, except when CI=true, where they fail it.
//
// Run as root, pgtest chowns its directories to the user postgres and runs
// the server binaries with runuser, since PostgreSQL refuses to run as root.
// The servers run with fsync off: they are for tests only. Every cluster is
// stopped (pg_ctl -m immediate) and its directory removed in t.Cleanup; a
// small watchdog process removes whatever is left if the test binary dies.
//
// pgtest is internal: applications must not import it.
package pgtest
