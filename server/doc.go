// Package server is offsync's reference authority: a core.Transport over any
// core.Store. Every transport's server half serves a *Service, so its
// semantics are the sync protocol (docs/protocol.md):
//
//   - Pull pages a kind's feed in (UpdatedAt, ID) order with signed keyset
//     tokens (never offsets); tombstones are included.
//   - Push applies a batch in one store transaction: in bulk (a few
//     statements for the whole batch) when the store's transactions are a
//     core.BatchTx and there is no Validate hook, otherwise with a savepoint
//     per op; the answers and rows are the same either way. Each op is checked against the current row (the base check: a stale
//     base, or no base on an existing row, is a conflict answered with the
//     current record; Force skips only that check), against the caller's
//     scope (a row outside it is NotFound, never a conflict), and against
//     Options.Validate. Its version is taken with the kind's lock held
//     (core.AuthorityTx.NextVersion), so versions strictly increase in commit
//     order and a cursor never skips a row. Where the store's write
//     transactions do not exclude each other (Postgres), the batch's kinds
//     are locked first, in sorted order (KindLocker), so that concurrent
//     batches cannot deadlock. The answer to an applied op is
//     kept under (principal, OpID) in the same transaction; the same key with
//     the same request replays that answer, with another request it is
//     refused. Conflicts and rejections are not kept. Ops for a record that
//     follow one that was not applied are answered Skipped.
//   - Subscribe streams change notices ("kind K has changes up to (T, ID)").
//     With a store that implements core.Notifier they travel through the
//     database, so several Services sharing it fan out to all subscribers.
//     This is the one fan-out of every stream transport (REST events,
//     WebSocket, gRPC Subscribe, GraphQL subscriptions): a commit never waits
//     for a subscriber; each subscriber's backlog is bounded by the kinds it
//     watches (newer notices of a kind replace older ones); a filtered scope
//     gets notices that name only the kind. A transport bounds its own send
//     queue per connection and cuts a peer too slow to read, which then
//     reconnects and pulls (a gap).
//
// Server halves — the server side of each wire driver — register by name
// (RegisterTransport) and are opened over any core.Transport (OpenServer);
// offsync.Serve composes them on one HTTP listener (HTTPMux) or their own.
// They share one authentication step (Authenticate) and the authority's
// limits; a half holds framing only.
//
// The caller's principal travels in the context (core.WithPrincipal); a
// transport's server half authenticates the bearer token with Authenticate
// first. The Service does not own its store: Close it, then close the store.
package server
