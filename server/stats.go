package server

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/offsync/offsync/core"
)

// Transport labels of the statistics.
const (
	// TransportDirect labels the calls that came through no server half (a
	// program calling the Service in process).
	TransportDirect = "direct"
	// OtherKind labels every kind that has no label of its own: a kind that
	// is not served, and the dynamic kinds beyond StatsDynamicKinds. It is
	// not a valid kind name, so no served kind can be mistaken for it.
	OtherKind = "_other"
	// StatsDynamicKinds caps the dynamic kinds (Options.DynamicKinds) that
	// get a label of their own, in the order they were first counted; the
	// kinds of Options.Tables always have theirs.
	StatsDynamicKinds = 32
)

// latencyBuckets are the upper bounds, in seconds, of the latency
// histograms of the statistics (a last, unbounded bucket holds the rest).
var latencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type transportKey struct{}

// WithTransport returns ctx marked as a call through the server half name
// ("rest", "websocket", "grpc", "graphql"). Each half marks its requests
// where it authenticates them, so that the Service's statistics (Stats) count
// the calls per transport; a call without the mark counts as
// TransportDirect. The name is a label: keep it to a registered half's name.
func WithTransport(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, transportKey{}, name)
}

// TransportFrom returns the server half ctx was marked with by
// WithTransport, TransportDirect when none.
func TransportFrom(ctx context.Context) string {
	if n, ok := ctx.Value(transportKey{}).(string); ok && n != "" {
		return n
	}
	return TransportDirect
}

// StatsSnapshot is what a Service has done since it was created (Stats): plain
// figures, ready for encoding/json, a Prometheus collector or a dashboard.
// Counters only grow; ActiveSubscribers is a gauge.
type StatsSnapshot struct {
	// Transports are the figures per transport: each one opened over the
	// Service (OpenServer), and TransportDirect once a call came in
	// process.
	Transports map[string]TransportStats `json:"transports"`
	// Kinds are the per-kind figures, summed over the transports.
	Kinds map[string]KindStats `json:"kinds"`
	// Traffic are the per-kind figures of each transport, sorted by
	// transport then kind: the table kinds of every transport opened over
	// the Service (OpenServer), and each other pair once it saw a pushed op
	// or a pull.
	Traffic []TrafficStats `json:"traffic"`
	// ActiveSubscribers and NoticesSent are summed over the transports.
	ActiveSubscribers int64  `json:"active_subscribers"`
	NoticesSent       uint64 `json:"notices_sent"`
}

// TransportStats are the figures of one transport.
type TransportStats struct {
	Requests RequestCounts `json:"requests"`
	// ActiveSubscribers is the number of subscriptions open now.
	ActiveSubscribers int64 `json:"active_subscribers"`
	// NoticesSent counts the change notices handed to its subscribers.
	NoticesSent uint64 `json:"notices_sent"`
	// PushLatency is the time the Service took to answer each push batch.
	PushLatency Histogram `json:"push_latency"`
}

// RequestCounts count the calls of the Service by method; Failed counts
// those, of any method, that returned an error (a push whose ops were all
// answered, rejected or not, did not fail).
type RequestCounts struct {
	Push      uint64 `json:"push"`
	Pull      uint64 `json:"pull"`
	Get       uint64 `json:"get"`
	Subscribe uint64 `json:"subscribe"`
	Failed    uint64 `json:"failed"`
}

// Total is the number of calls of every method.
func (r RequestCounts) Total() uint64 { return r.Push + r.Pull + r.Get + r.Subscribe }

// KindStats are the figures of one kind: the pushed ops by the answer they
// got, and the rows pulled (tombstones included).
type KindStats struct {
	Applied  uint64 `json:"applied"`
	Conflict uint64 `json:"conflict"`
	NotFound uint64 `json:"not_found"`
	Rejected uint64 `json:"rejected"`
	Skipped  uint64 `json:"skipped"`
	Retry    uint64 `json:"retry"`
	Pulled   uint64 `json:"pulled"`
	// Pages counts the pull pages served.
	Pages uint64 `json:"pages"`
}

// Pushed is the number of ops answered, whatever the answer.
func (k KindStats) Pushed() uint64 {
	return k.Applied + k.Conflict + k.NotFound + k.Rejected + k.Skipped + k.Retry
}

func (k *KindStats) add(o KindStats) {
	k.Applied += o.Applied
	k.Conflict += o.Conflict
	k.NotFound += o.NotFound
	k.Rejected += o.Rejected
	k.Skipped += o.Skipped
	k.Retry += o.Retry
	k.Pulled += o.Pulled
	k.Pages += o.Pages
}

// TrafficStats are the figures of one kind through one transport.
type TrafficStats struct {
	Transport string `json:"transport"`
	Kind      string `json:"kind"`
	KindStats
	// PullLatency is the time the Service took to answer each pull page.
	PullLatency Histogram `json:"pull_latency"`
}

// Histogram is a latency distribution over fixed buckets, from 0.5 ms to
// 10 s.
type Histogram struct {
	// Bounds are the buckets' upper bounds in seconds.
	Bounds []float64 `json:"bounds"`
	// Cumulative[i] counts the observations at most Bounds[i].
	Cumulative []uint64 `json:"cumulative"`
	// Count counts every observation, SumSeconds adds them up.
	Count      uint64  `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
}

// histogram is a lock-free latency histogram.
type histogram struct {
	buckets [len(latencyBuckets) + 1]atomic.Uint64 // the last is +Inf
	sumNs   atomic.Uint64
}

func (h *histogram) observe(d time.Duration) {
	sec := d.Seconds()
	i := sort.SearchFloat64s(latencyBuckets[:], sec) // first bound >= sec
	h.buckets[i].Add(1)
	if d > 0 {
		h.sumNs.Add(uint64(d))
	}
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Bounds: append([]float64(nil), latencyBuckets[:]...), Cumulative: make([]uint64, len(latencyBuckets))}
	var c uint64
	for i := range latencyBuckets {
		c += h.buckets[i].Load()
		out.Cumulative[i] = c
	}
	out.Count = c + h.buckets[len(latencyBuckets)].Load()
	out.SumSeconds = float64(h.sumNs.Load()) / 1e9
	return out
}

type kindCounters struct {
	byStatus [int(core.StatusRetry) + 1]atomic.Uint64
	pulled   atomic.Uint64
	pages    atomic.Uint64
	pullLat  histogram
}

type transportCounters struct {
	push, pull, get, subscribe, failed atomic.Uint64
	active                             atomic.Int64
	notices                            atomic.Uint64
	pushLat                            histogram
}

type seriesKey struct{ transport, kind string }

// stats are a Service's counters. Labels are bounded: transports are the
// halves' names, kinds the served ones (see kindLabel).
type stats struct {
	mu         sync.RWMutex
	transports map[string]*transportCounters
	series     map[seriesKey]*kindCounters
	dynamic    map[string]bool // dynamic kinds with a label of their own
}

func newStats() *stats {
	return &stats{transports: map[string]*transportCounters{}, series: map[seriesKey]*kindCounters{},
		dynamic: map[string]bool{}}
}

func (st *stats) transport(name string) *transportCounters {
	st.mu.RLock()
	t := st.transports[name]
	st.mu.RUnlock()
	if t != nil {
		return t
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if t = st.transports[name]; t == nil {
		t = &transportCounters{}
		st.transports[name] = t
	}
	return t
}

func (st *stats) kind(transport, kind string) *kindCounters {
	k := seriesKey{transport, kind}
	st.mu.RLock()
	c := st.series[k]
	st.mu.RUnlock()
	if c != nil {
		return c
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if c = st.series[k]; c == nil {
		c = &kindCounters{}
		st.series[k] = c
	}
	return c
}

// kindLabel is the label of kind: its name when it is a table of the
// Service or a served dynamic kind within StatsDynamicKinds, OtherKind
// otherwise.
func (s *Service) kindLabel(kind string) string {
	s.kindMu.Lock()
	_, table := s.tables[kind]
	served := s.kinds[kind]
	s.kindMu.Unlock()
	switch {
	case table:
		return kind
	case !served:
		return OtherKind
	}
	st := s.stats
	st.mu.RLock()
	own := st.dynamic[kind]
	n := len(st.dynamic)
	st.mu.RUnlock()
	if own {
		return kind
	}
	if n >= StatsDynamicKinds {
		return OtherKind
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.dynamic[kind] || len(st.dynamic) < StatsDynamicKinds {
		st.dynamic[kind] = true
		return kind
	}
	return OtherKind
}

// declareTransport makes the figures of transport name, and of each table
// kind through it, appear in Stats before any call, as zeros.
func (s *Service) declareTransport(name string) {
	s.stats.transport(name)
	for kind := range s.tables {
		s.stats.kind(name, kind)
	}
}

// countPush records a push batch: its latency and, when it was answered,
// each op's answer under its kind.
func (s *Service) countPush(ctx context.Context, ops []core.Op, res []core.PushResult, err error, d time.Duration) {
	tr := TransportFrom(ctx)
	t := s.stats.transport(tr)
	t.push.Add(1)
	if err != nil {
		t.failed.Add(1)
		return
	}
	t.pushLat.observe(d)
	var last string
	var c *kindCounters
	for i, r := range res {
		if i >= len(ops) {
			break
		}
		if c == nil || ops[i].Kind != last {
			last = ops[i].Kind
			c = s.stats.kind(tr, s.kindLabel(last))
		}
		if int(r.Status) < len(c.byStatus) {
			c.byStatus[r.Status].Add(1)
		}
	}
}

// countPull records a pull page of kind.
func (s *Service) countPull(ctx context.Context, kind string, page *core.Page, err error, d time.Duration) {
	tr := TransportFrom(ctx)
	t := s.stats.transport(tr)
	t.pull.Add(1)
	if err != nil {
		t.failed.Add(1)
		return
	}
	c := s.stats.kind(tr, s.kindLabel(kind))
	c.pages.Add(1)
	c.pulled.Add(uint64(len(page.Records)))
	c.pullLat.observe(d)
}

// countCall records a Get or a Subscribe.
func (s *Service) countCall(ctx context.Context, subscribe bool, err error) {
	t := s.stats.transport(TransportFrom(ctx))
	if subscribe {
		t.subscribe.Add(1)
	} else {
		t.get.Add(1)
	}
	if err != nil {
		t.failed.Add(1)
	}
}

// Stats returns what the Service has done since New: requests, pushed ops by
// answer, pulled rows and latencies per transport (WithTransport) and kind,
// open subscriptions and the notices sent. It is cheap (atomic counters)
// and safe to call at any time, also after Close.
func (s *Service) Stats() StatsSnapshot {
	st := s.stats
	out := StatsSnapshot{Transports: map[string]TransportStats{}, Kinds: map[string]KindStats{}}
	st.mu.RLock()
	defer st.mu.RUnlock()
	for name, t := range st.transports {
		ts := TransportStats{
			Requests: RequestCounts{Push: t.push.Load(), Pull: t.pull.Load(), Get: t.get.Load(),
				Subscribe: t.subscribe.Load(), Failed: t.failed.Load()},
			ActiveSubscribers: t.active.Load(),
			NoticesSent:       t.notices.Load(),
			PushLatency:       t.pushLat.snapshot(),
		}
		out.Transports[name] = ts
		out.ActiveSubscribers += ts.ActiveSubscribers
		out.NoticesSent += ts.NoticesSent
	}
	for k, c := range st.series {
		ks := KindStats{
			Applied:  c.byStatus[core.StatusApplied].Load(),
			Conflict: c.byStatus[core.StatusConflict].Load(),
			NotFound: c.byStatus[core.StatusNotFound].Load(),
			Rejected: c.byStatus[core.StatusRejected].Load(),
			Skipped:  c.byStatus[core.StatusSkipped].Load(),
			Retry:    c.byStatus[core.StatusRetry].Load(),
			Pulled:   c.pulled.Load(),
			Pages:    c.pages.Load(),
		}
		out.Traffic = append(out.Traffic, TrafficStats{Transport: k.transport, Kind: k.kind, KindStats: ks,
			PullLatency: c.pullLat.snapshot()})
		sum := out.Kinds[k.kind]
		sum.add(ks)
		out.Kinds[k.kind] = sum
	}
	sort.Slice(out.Traffic, func(i, j int) bool {
		a, b := out.Traffic[i], out.Traffic[j]
		if a.Transport != b.Transport {
			return a.Transport < b.Transport
		}
		return a.Kind < b.Kind
	})
	return out
}
