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
// Hot paths do not go through bun's query builder, which writes values into
// the SQL text: the outbox statements, the system tables' batch statements
// (syssql.go) and each typed kind's row statements (typedsql.go) use bound
// parameters, and on SQLite they are prepared once, at Register. Records
// whose data is a flat JSON object are turned into a typed kind's arguments
// without building the model (jsonargs.go). The bulk methods of core.BatchTx
// are in batch.go.
//
// Transactions are carried in the context: fn given to Update receives a ctx
// that makes a nested Update (run in a savepoint) or View join the outer
// transaction.
package bunstore
