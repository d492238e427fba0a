package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// Namespace prefixes every metric name.
const Namespace = "offsync"

// StatsSource is what NewServerCollector reads: a *server.Service.
type StatsSource interface {
	Stats() server.StatsSnapshot
}

var (
	descRequests = prometheus.NewDesc(Namespace+"_server_requests_total",
		"Calls the authority answered, by transport and method (push, pull, get, subscribe).",
		[]string{"transport", "method"}, nil)
	descRequestErrors = prometheus.NewDesc(Namespace+"_server_request_errors_total",
		"Calls that failed as a whole (refused, unavailable, invalid), by transport.",
		[]string{"transport"}, nil)
	descPushed = prometheus.NewDesc(Namespace+"_server_pushed_ops_total",
		"Pushed ops by the answer they got: applied, conflict, not_found, rejected, skipped, retry.",
		[]string{"transport", "kind", "outcome"}, nil)
	descPulled = prometheus.NewDesc(Namespace+"_server_pulled_rows_total",
		"Rows served by pulls, tombstones included.",
		[]string{"transport", "kind"}, nil)
	descPageSeconds = prometheus.NewDesc(Namespace+"_server_pull_page_seconds",
		"Time the authority took to answer a pull page.",
		[]string{"transport", "kind"}, nil)
	descBatchSeconds = prometheus.NewDesc(Namespace+"_server_push_batch_seconds",
		"Time the authority took to answer a push batch.",
		[]string{"transport"}, nil)
	descSubscribers = prometheus.NewDesc(Namespace+"_server_subscribers",
		"Subscriptions open now.",
		[]string{"transport"}, nil)
	descNotices = prometheus.NewDesc(Namespace+"_server_notices_sent_total",
		"Change notices handed to subscribers.",
		[]string{"transport"}, nil)
)

type serverCollector struct{ src StatsSource }

// NewServerCollector returns a collector of an authority's statistics,
// read at each scrape.
func NewServerCollector(svc StatsSource) prometheus.Collector { return serverCollector{svc} }

// Describe implements prometheus.Collector.
func (c serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descRequestErrors, descPushed, descPulled,
		descPageSeconds, descBatchSeconds, descSubscribers, descNotices} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c serverCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.Stats()
	for name, t := range st.Transports {
		for _, m := range []struct {
			method string
			n      uint64
		}{{"push", t.Requests.Push}, {"pull", t.Requests.Pull}, {"get", t.Requests.Get}, {"subscribe", t.Requests.Subscribe}} {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(m.n), name, m.method)
		}
		ch <- prometheus.MustNewConstMetric(descRequestErrors, prometheus.CounterValue, float64(t.Requests.Failed), name)
		ch <- prometheus.MustNewConstMetric(descSubscribers, prometheus.GaugeValue, float64(t.ActiveSubscribers), name)
		ch <- prometheus.MustNewConstMetric(descNotices, prometheus.CounterValue, float64(t.NoticesSent), name)
		if t.PushLatency.Count > 0 {
			ch <- histogram(descBatchSeconds, t.PushLatency, name)
		}
	}
	for _, tr := range st.Traffic {
		for _, o := range []struct {
			outcome string
			n       uint64
		}{{"applied", tr.Applied}, {"conflict", tr.Conflict}, {"not_found", tr.NotFound},
			{"rejected", tr.Rejected}, {"skipped", tr.Skipped}, {"retry", tr.Retry}} {
			ch <- prometheus.MustNewConstMetric(descPushed, prometheus.CounterValue, float64(o.n), tr.Transport, tr.Kind, o.outcome)
		}
		ch <- prometheus.MustNewConstMetric(descPulled, prometheus.CounterValue, float64(tr.Pulled), tr.Transport, tr.Kind)
		if tr.PullLatency.Count > 0 {
			ch <- histogram(descPageSeconds, tr.PullLatency, tr.Transport, tr.Kind)
		}
	}
}

func histogram(d *prometheus.Desc, h server.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Cumulative[i]
	}
	return prometheus.MustNewConstHistogram(d, h.Count, h.SumSeconds, buckets, labels...)
}

// Handler serves the Prometheus text format of an authority's statistics
// (NewServerCollector on a registry of its own). offsync.ServeWith mounts
// it at /metrics behind server.AdminOnly.
func Handler(svc StatsSource) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewServerCollector(svc))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var (
	descOutbox = prometheus.NewDesc(Namespace+"_replica_outbox_ops",
		"Ops in the replica's outbox by kind and state (pending, in_flight, deferred, dead).",
		[]string{"kind", "state"}, nil)
	descSyncs = prometheus.NewDesc(Namespace+"_replica_syncs_total",
		"Syncs completed (Sync and Resync).", nil, nil)
	descFailedSyncs = prometheus.NewDesc(Namespace+"_replica_failed_syncs_total",
		"Syncs that reported an error.", nil, nil)
	descSyncErrors = prometheus.NewDesc(Namespace+"_replica_sync_errors_total",
		"Errors reported by syncs (several per sync are possible).", nil, nil)
	descLastSync = prometheus.NewDesc(Namespace+"_replica_last_sync_timestamp_seconds",
		"When the last sync ended (Unix time; absent before the first).", nil, nil)
	descLastSuccess = prometheus.NewDesc(Namespace+"_replica_last_success_timestamp_seconds",
		"When the last sync without an error ended (Unix time; absent before the first).", nil, nil)
	descLag = prometheus.NewDesc(Namespace+"_replica_lag_seconds",
		"Time between the authority's commit of the newest record of the last page pulled and its application here.", nil, nil)
	descBatches = prometheus.NewDesc(Namespace+"_replica_push_batches_total",
		"Push batches answered by the authority.", nil, nil)
	descReplicaOps = prometheus.NewDesc(Namespace+"_replica_ops_total",
		"The replica's ops and records by kind and event: pushed (applied by the authority), failed, dead, pulled, kept.",
		[]string{"kind", "event"}, nil)
	descConflicts = prometheus.NewDesc(Namespace+"_replica_conflicts_total",
		"Conflicts by kind and what became of them: detected, resolved, deferred.",
		[]string{"kind", "event"}, nil)
	descScrapeError = prometheus.NewDesc(Namespace+"_replica_stats_error",
		"1 when the replica's outbox could not be read at this scrape.", nil, nil)
)

// EngineStatsSource is what NewEngineCollector reads: a *core.Engine.
type EngineStatsSource interface {
	Stats(ctx context.Context) (core.EngineStats, error)
	Kinds() []string
}

type engineCollector struct {
	eng     EngineStatsSource
	timeout time.Duration
}

// NewEngineCollector returns a collector of a replica's figures, read at
// each scrape (the outbox is counted in the store, within 5 seconds).
func NewEngineCollector(eng EngineStatsSource) prometheus.Collector {
	return engineCollector{eng: eng, timeout: 5 * time.Second}
}

// Describe implements prometheus.Collector.
func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOutbox, descSyncs, descFailedSyncs, descSyncErrors, descLastSync,
		descLastSuccess, descLag, descBatches, descReplicaOps, descConflicts, descScrapeError} {
		ch <- d
	}
}

var opStates = []core.OpState{core.StatePending, core.StateInFlight, core.StateDeferred, core.StateDead}

// Collect implements prometheus.Collector.
func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.eng.Stats(ctx)
	failed := 0.0
	if err != nil {
		failed = 1
		ch <- prometheus.MustNewConstMetric(descScrapeError, prometheus.GaugeValue, failed)
		return
	}
	ch <- prometheus.MustNewConstMetric(descScrapeError, prometheus.GaugeValue, failed)
	counts := map[[2]string]int{}
	for _, oc := range st.Outbox {
		counts[[2]string{oc.Kind, string(oc.State)}] += oc.Count
	}
	for _, k := range c.eng.Kinds() {
		for _, s := range opStates {
			ch <- prometheus.MustNewConstMetric(descOutbox, prometheus.GaugeValue, float64(counts[[2]string{k, string(s)}]), k, string(s))
		}
	}
	ch <- prometheus.MustNewConstMetric(descSyncs, prometheus.CounterValue, float64(st.Syncs))
	ch <- prometheus.MustNewConstMetric(descFailedSyncs, prometheus.CounterValue, float64(st.FailedSyncs))
	ch <- prometheus.MustNewConstMetric(descSyncErrors, prometheus.CounterValue, float64(st.SyncErrors))
	ch <- prometheus.MustNewConstMetric(descBatches, prometheus.CounterValue, float64(st.Batches))
	if !st.LastSync.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastSync, prometheus.GaugeValue, unix(st.LastSync))
	}
	if !st.LastSuccess.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, unix(st.LastSuccess))
	}
	if !st.LagAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, st.Lag.Seconds())
	}
	for k, ks := range st.Kinds {
		for _, e := range []struct {
			event string
			n     uint64
		}{{"pushed", ks.Pushed}, {"failed", ks.Failed}, {"dead", ks.Dead}, {"pulled", ks.Pulled}, {"kept", ks.Kept}} {
			ch <- prometheus.MustNewConstMetric(descReplicaOps, prometheus.CounterValue, float64(e.n), k, e.event)
		}
		for _, e := range []struct {
			event string
			n     uint64
		}{{"detected", ks.Conflicts}, {"resolved", ks.Resolved}, {"deferred", ks.Deferred}} {
			ch <- prometheus.MustNewConstMetric(descConflicts, prometheus.CounterValue, float64(e.n), k, e.event)
		}
	}
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
