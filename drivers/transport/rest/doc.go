// Package rest is offsync's REST transport: a client that implements
// core.Transport (with core.Getter, core.Subscriber and core.Batcher) over
// HTTP, and an http.Handler that serves the same contract for any
// core.Transport, typically *server.Service.
//
// The wire contract is docs/protocol.md: pulls are GET /{kind} with keyset page
// tokens, pushes are PUT and DELETE /{kind}/{id} one op at a time (the
// per-op form every backend of the contract serves) or POST /batch, realtime
// notices are server-sent events on GET /events, and GET /health lists what a
// server offers. The client probes /health once and uses /batch and /events
// only when they are listed, so it also works against a per-op backend that
// has neither.
//
// Records travel as flat JSON objects (id, updated_at, deleted_at,
// edited_at, then the business fields) with microsecond timestamps that are
// never rounded.
//
// The package registers the transport driver "rest" (core.OpenTransport),
// with the options "token" (a static bearer token), "timeout" (a
// duration string such as "10s", or a number of seconds), and "ca_file" (a
// PEM file of the certificates to trust) or "tls" (a *tls.Config) for an
// https:// URL; in Go, Options.TLS.
package rest
