// Package bunstore is the core.Store shared by offsync's bun-based drivers
// (SQLite and Postgres). It is written once over a *bun.DB; what differs
// between databases — DDL types, the per-kind version lock, JSON field
// extraction, transaction options — is behind the small Dialect interface a
// driver implements.
//
// Layout: system tables offsync_* created by versioned migrations (the
// applied versions are kept in offsync_schema), one SQL table per typed kind
// (created from its bun model), and offsync_documents for document kinds.
// Every time is an INTEGER count of microseconds since the Unix epoch.
//
// Transactions are carried in the context: fn given to Update receives a ctx
// that makes a nested Update (run in a savepoint) or View join the outer
// transaction.
package bunstore
