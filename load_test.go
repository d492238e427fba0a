package offsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/loadtest"
)

// The load test: one offsync.ServeWith server, in a process of its own,
// holds many concurrent change streams spread over the four streaming wire
// forms (WebSocket, gRPC Subscribe, GraphQL subscriptions, REST's SSE
// events), each a client of its own subscribed to one of loadKinds kinds,
// while writers (their clients spread over the same forms) push one record
// each per interval. When the writers stop, one last write per kind (the
// fence) must reach every stream: the server coalesces notices for a slow
// stream but always keeps the newest, so a stream that misses its fence has
// lost one. Any error fails the test: a stream that cannot subscribe, that
// reports a gap (it lost its connection) or closes early, a push that fails
// or is not applied, a fence not seen. It reports the server's RSS and the
// p99 latency of pushes and of notices (from just before a push is sent to
// the notice's arrival on each stream).
//
// By default (go test) it holds 100 streams and 8 writers for 2 s. The run
// of issue 21 is
//
//	OFFSYNC_LOAD=1 go test -run '^TestLoad$' -v -timeout 20m .
//
// (1,000 streams, 50 writers, 60 s); OFFSYNC_LOAD_STREAMS, _WRITERS,
// _SECONDS and _INTERVAL_MS change each figure.
const loadChildEnv = "OFFSYNC_LOAD_CHILD"

// loadKinds is the number of kinds the streams and writers spread over: a
// write is announced to streams/loadKinds streams.
const loadKinds = 10

// loadForms are the streaming wire forms, in the order streams and writers
// take them.
var loadForms = []string{"websocket", "grpc", "graphql", "rest"}

func loadKind(i int) string { return fmt.Sprintf("load%d", i%loadKinds) }

// TestLoadServerProcess is the server of TestLoad when the test binary is
// run again as its child; otherwise it returns at once.
func TestLoadServerProcess(t *testing.T) {
	if !loadtest.InChild(loadChildEnv) {
		return
	}
	dir := t.TempDir()
	serveLoadChild(t, dir, "{dsn: "+filepath.Join(dir, "server.db")+"}")
}

// serveLoadChild serves every wire form over the load kinds on the store
// storeYAML (a YAML flow mapping) until the parent test ends, announcing
// the endpoints to it: the server of TestLoad and each instance of
// TestMultiLoad.
func serveLoadChild(t *testing.T, dir, storeYAML string) {
	kinds := make([]string, loadKinds)
	for i := range kinds {
		kinds[i] = loadKind(i)
	}
	cfg, err := config.ParseServer([]byte(`store: `+storeYAML+`
server:
  http: 127.0.0.1:0
  kinds: [`+strings.Join(kinds, ", ")+`]
  transports: {rest: {}, websocket: {}, graphql: {}, grpc: {}}
`), filepath.Join(dir, "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- offsync.ServeWith(ctx, cfg, &offsync.ServeOptions{
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
			Ready: func(endpoints map[string]string) {
				b, _ := json.Marshal(endpoints)
				loadtest.Announce(string(b))
			},
		})
	}()
	loadtest.AwaitParent()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// loadSize is a load test's size: the small default given, the issue's
// full size (1,000 streams, 50 writers, 60 s, a write every 500 ms per
// writer) with OFFSYNC_LOAD set, and each figure overridden by
// OFFSYNC_LOAD_STREAMS, _WRITERS, _SECONDS and _INTERVAL_MS.
func loadSize(streams, writers, seconds, intervalMS int) (int, int, int, time.Duration) {
	if os.Getenv("OFFSYNC_LOAD") != "" {
		streams, writers, seconds, intervalMS = 1000, 50, 60, 500
	}
	return loadtest.EnvInt("OFFSYNC_LOAD_STREAMS", streams),
		loadtest.EnvInt("OFFSYNC_LOAD_WRITERS", writers),
		loadtest.EnvInt("OFFSYNC_LOAD_SECONDS", seconds),
		time.Duration(loadtest.EnvInt("OFFSYNC_LOAD_INTERVAL_MS", intervalMS)) * time.Millisecond
}

// loadStream is one subscription of a load test.
type loadStream struct {
	form string
	tr   core.Transport
	ch   <-chan core.Notice
}

// openLoadStreams opens n streams, at most 32 dialling at once: stream i
// subscribes to loadKind(i) over the form and endpoint where(i) names
// (label names it in errors). Failures are added to errs; a stream that
// failed has a nil transport or channel.
func openLoadStreams(ctx context.Context, n int, where func(i int) (form, endpoint, label string), errs *loadErrors) []loadStream {
	ss := make([]loadStream, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range ss {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			form, endpoint, label := where(i)
			tr, err := core.OpenTransport(ctx, form, endpoint, nil)
			if err != nil {
				errs.add(fmt.Errorf("stream %d (%s): open: %w", i, label, err))
				return
			}
			ch, err := tr.(core.Subscriber).Subscribe(ctx, []string{loadKind(i)})
			if err != nil {
				errs.add(fmt.Errorf("stream %d (%s): subscribe: %w", i, label, err))
			}
			ss[i] = loadStream{form: form, tr: tr, ch: ch}
		}()
	}
	wg.Wait()
	return ss
}

// closeLoadStreams closes the transports of ss.
func closeLoadStreams(ss []loadStream) {
	for _, s := range ss {
		if s.tr != nil {
			closeIf(s.tr)
		}
	}
}

// loadErrors collects the errors of a run: every one is counted, the first
// few kept.
type loadErrors struct {
	n     atomic.Int64
	mu    sync.Mutex
	first []error
}

func (e *loadErrors) add(err error) {
	if e.n.Add(1) <= 5 {
		e.mu.Lock()
		e.first = append(e.first, err)
		e.mu.Unlock()
	}
}

func TestLoad(t *testing.T) {
	if loadtest.InChild(loadChildEnv) {
		return
	}
	streams, writers, seconds, interval := loadSize(100, 8, 2, 100)

	child := loadtest.StartChild(t, "TestLoadServerProcess", loadChildEnv)
	var endpoints map[string]string
	if err := json.Unmarshal([]byte(child.Payload), &endpoints); err != nil {
		t.Fatalf("the server's endpoints %q: %v", child.Payload, err)
	}
	for _, f := range loadForms {
		if endpoints[f] == "" {
			t.Fatalf("%s is not served: %v", f, endpoints)
		}
	}
	rssIdle := child.RSSKB()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errs loadErrors

	// sent holds when each record's push was sent, by id.
	var sent sync.Map
	// fenceID[k] is the id of kind k's last write.
	fenceID := make([]string, loadKinds)
	for k := range fenceID {
		fenceID[k] = fmt.Sprintf("fence-%d", k)
	}

	ss := openLoadStreams(ctx, streams, func(i int) (string, string, string) {
		form := loadForms[i%len(loadForms)]
		return form, endpoints[form], form
	}, &errs)
	defer closeLoadStreams(ss)
	if n := errs.n.Load(); n > 0 {
		t.Fatalf("%d of %d streams failed to open; first: %v", n, streams, errs.first)
	}
	rssHeld := child.RSSKB()

	// Read every stream: the latency of each notice of a write, until the
	// fence of its kind.
	var noticeMu sync.Mutex
	var noticeLat []time.Duration
	var notices, fencesSeen atomic.Int64
	var readers sync.WaitGroup
	for i, s := range ss {
		readers.Go(func() {
			fence := fenceID[i%loadKinds]
			var lat []time.Duration
			defer func() {
				noticeMu.Lock()
				noticeLat = append(noticeLat, lat...)
				noticeMu.Unlock()
			}()
			for {
				n, ok := <-s.ch
				if !ok {
					if ctx.Err() == nil {
						errs.add(fmt.Errorf("stream %d (%s): the stream closed", i, s.form))
					}
					return
				}
				at := time.Now()
				if n.Gap {
					errs.add(fmt.Errorf("stream %d (%s): a gap: the stream lost its connection", i, s.form))
					continue
				}
				notices.Add(1)
				if v, ok := sent.Load(n.ID); ok {
					lat = append(lat, at.Sub(v.(time.Time)))
				}
				if n.ID == fence {
					fencesSeen.Add(1)
					return
				}
			}
		})
	}

	// The writers: writer w's n-th write is to kind w+n.
	var pushMu sync.Mutex
	var pushLat []time.Duration
	var pushes atomic.Int64
	var perKind [loadKinds]atomic.Int64 // writes of each kind
	stop := make(chan struct{})
	var ws sync.WaitGroup
	writerTr := make([]core.Transport, writers)
	for w := range writers {
		form := loadForms[w%len(loadForms)]
		tr, err := core.OpenTransport(ctx, form, endpoints[form], nil)
		if err != nil {
			t.Fatalf("writer %d (%s): %v", w, form, err)
		}
		writerTr[w] = tr
		defer closeIf(tr)
	}
	push := func(tr core.Transport, kind, id, opID string) time.Duration {
		payload, _ := json.Marshal(map[string]any{"n": id})
		start := time.Now()
		sent.Store(id, start)
		res, err := tr.Push(ctx, []core.Op{{OpID: opID, Kind: kind, ID: id, Type: core.OpUpsert, Payload: payload}})
		d := time.Since(start)
		switch {
		case err != nil:
			errs.add(fmt.Errorf("push %s/%s: %w", kind, id, err))
		case len(res) != 1 || res[0].Status != core.StatusApplied:
			errs.add(fmt.Errorf("push %s/%s: %+v", kind, id, res))
		}
		return d
	}
	rssPeak := rssHeld
	loadBefore := loadtest.LoadAvg()
	cpuBefore, selfBefore := child.CPU(), loadtest.CPU(os.Getpid())
	began := time.Now()
	for w := range writers {
		ws.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			var lat []time.Duration
			for n := 0; ; n++ {
				id := fmt.Sprintf("w%d-%d", w, n)
				lat = append(lat, push(writerTr[w], loadKind(w+n), id, "op-"+id))
				pushes.Add(1)
				perKind[(w+n)%loadKinds].Add(1)
				select {
				case <-stop:
					pushMu.Lock()
					pushLat = append(pushLat, lat...)
					pushMu.Unlock()
					return
				case <-tick.C:
				}
			}
		})
	}
	sample := time.NewTicker(time.Second)
	deadline := time.After(time.Duration(seconds) * time.Second)
sampling:
	for {
		select {
		case <-sample.C:
			rssPeak = max(rssPeak, child.RSSKB())
		case <-deadline:
			break sampling
		}
	}
	sample.Stop()
	close(stop)
	ws.Wait()
	elapsed := time.Since(began)
	cpu, self := child.CPU()-cpuBefore, loadtest.CPU(os.Getpid())-selfBefore
	loadAfter := loadtest.LoadAvg()
	rssLoaded := child.RSSKB()
	rssPeak = max(rssPeak, rssLoaded)

	// The fences, then every stream must see its own. The wait is a bound
	// for a stuck test, not a measurement.
	for k := range loadKinds {
		push(writerTr[0], loadKind(k), fenceID[k], "op-"+fenceID[k])
	}
	waited := make(chan struct{})
	go func() { readers.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * time.Minute):
		errs.add(fmt.Errorf("%d of %d streams did not see the fence of their kind", int64(streams)-fencesSeen.Load(), streams))
		cancel()
		<-waited
	}

	w, p := loadtest.Summarize(pushLat), loadtest.Summarize(noticeLat)
	writes := pushes.Load()
	var expected int64 // notices of the writes, had none been coalesced
	for i := range streams {
		expected += perKind[i%loadKinds].Load()
	}
	t.Logf("load: %d streams (%d each over websocket, grpc, graphql, rest SSE; %d kinds), %d writers every %v for %v",
		streams, streams/len(loadForms), loadKinds, writers, interval, elapsed.Round(time.Millisecond))
	t.Logf("load: %d writes (%.0f/s), %d notices delivered (%d had none been coalesced), %d of %d fences seen, %d errors",
		writes, float64(writes)/elapsed.Seconds(), notices.Load(), expected, fencesSeen.Load(), streams, errs.n.Load())
	t.Logf("load: write latency %v", w)
	t.Logf("load: notice latency %v", p)
	t.Logf("load: server RSS %d kB idle, %d kB with the streams open, %d kB after the writes, %d kB peak (%.1f kB per stream)",
		rssIdle, rssHeld, rssLoaded, rssPeak, float64(rssHeld-rssIdle)/float64(streams))
	t.Logf("load: CPU while writing: server %v (%.2f cores), streams and writers %v (%.2f cores); machine load average %s before, %s after (%d cores, shared)",
		cpu.Round(10*time.Millisecond), cpu.Seconds()/elapsed.Seconds(), self.Round(10*time.Millisecond), self.Seconds()/elapsed.Seconds(), loadBefore, loadAfter, runtime.NumCPU())
	if n := errs.n.Load(); n > 0 {
		t.Fatalf("%d errors under load; first: %v", n, errs.first)
	}
	if fencesSeen.Load() != int64(streams) {
		t.Fatalf("%d of %d streams saw the last write of their kind", fencesSeen.Load(), streams)
	}
}
