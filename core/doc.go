// Package core defines offsync's portable types and the three interfaces
// every driver implements: Store (a local replica's or the authority's
// database), Transport (the authority as seen from a replica) and Resolver
// (what a conflict becomes). It also holds the Engine, which owns the outbox,
// retries, ordering, conflict handling and cursor bookkeeping, so that drivers
// stay small.
//
// core imports only the standard library. Drivers register themselves by name
// with RegisterStore, RegisterTransport and RegisterResolver, as database/sql
// drivers do, and a program composes them either in Go or from a config file
// through the root offsync package.
//
// A replica writes through a Writer: the local row and its outbox op commit in
// one transaction. Engine.Sync pushes the outbox in order, resolves conflicts
// with the strategy chosen for the kind, then pulls each kind page by page,
// committing every page together with the cursor after it.
package core
