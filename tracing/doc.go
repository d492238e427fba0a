// Package tracing connects offsync to OpenTelemetry traces.
//
// New adapts an OpenTelemetry TracerProvider to core.Tracer, the hook of the
// engine (core.Options.Tracer) and of the authority (server.Options.Tracer):
// a sync, each push batch, each pull page and each resolution of a replica
// is a span, and so is the authority's handling of each call. The
// transports carry the trace context to the authority — the traceparent and
// tracestate HTTP headers for REST and GraphQL over HTTP, gRPC metadata, a
// "traceparent" field in WebSocket and GraphQL-over-WebSocket messages — so
// that one sync is one trace across replica and authority.
//
// The transports use InjectHeader, ExtractHeader, Traceparent and Extract
// to carry it; they cost nothing when there is no span to carry.
//
// With New(nil) the spans go to the global provider (otel.SetTracerProvider)
// as it is when each span starts; as long as the program sets none, or sets
// a no-op provider, a span costs nothing: no allocation, ctx as it was.
package tracing
