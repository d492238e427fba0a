// Package metrics exports offsync's figures in the Prometheus format.
//
// NewServerCollector reads an authority's statistics (server.Service.Stats)
// at each scrape: requests, pushed ops by outcome, pulled rows, push batch
// and pull page latencies, open subscriptions and notices sent, per
// transport and per kind. Handler serves them, as `offsync serve` does at
// /metrics behind server.AdminOnly. NewEngineCollector does the same for a
// replica (core.Engine.Stats): its outbox by kind and state, its syncs, the
// time of the last one, its lag behind the authority and its per-kind
// counters; a program registers it on its own registry.
//
// Labels are bounded: a transport label is a server half's name (or
// "direct" for in-process calls), a kind label a kind the authority serves
// (a table, or one of the first server.StatsDynamicKinds dynamic kinds),
// every other kind being server.OtherKind ("_other"). The metric names are
// listed in docs/operations.md.
package metrics
