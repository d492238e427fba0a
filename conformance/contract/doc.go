// Package contract checks a live server against the REST
// contract of docs/protocol.md, as a black box: it speaks HTTP only, so the server may be
// written in any language. `offsync conformance --transport rest --url URL`
// runs it from the command line.
//
// Run writes records under a fresh id prefix in one kind (Config.Kind) and
// checks: conflicts on a stale base and on a create over an existing row,
// forced writes, idempotent replay (and that a 409 is not kept under the
// key), keyset paging while rows are written, tombstones, microsecond
// timestamps compared as instants, scope invisibility with a second token,
// and the answers to bad input (400, 413, 404 for an unknown kind). Each
// check gives one Result, printed as "PASS name: detail".
//
// RunClient checks a live server through any client transport instead
// (core.Transport, opened by ClientConfig.Open, with its optional Getter,
// Subscriber and Batcher upgrades), so every wire form is held to the same
// meanings: creates with microsecond versions, idempotent replay by OpID,
// conflicts with the current record and the forced retry after one,
// tombstones, keyset paging while rows are written, Get and its
// core.ErrNotFound, core.ErrUnknownKind and core.ErrBadCursor, scope
// invisibility with a second principal, a notice for a push made after
// Subscribe returned, and positive batch limits. `offsync conformance
// --transport NAME --url URL` runs it for any registered transport.
package contract
