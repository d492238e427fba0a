// Package wire holds what every offsync wire driver shares and users must not
// import: the one table between core's sentinel errors and the protocol's
// status numbers and codes (both directions), the meaning of a per-op result
// status, bearer-token parsing, the token source type and the reconnect
// backoff. A driver keeps only its framing; the meaning of every answer comes
// from here, so REST, WebSocket, gRPC and GraphQL agree by construction.
package wire
