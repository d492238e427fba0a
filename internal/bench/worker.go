package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
	"github.com/uptrace/bun"
)

// The worker roles.
const (
	RoleServer      = "server"      // serve every registered wire form over a durable authority
	RoleLimits      = "limits"      // JSON decode and SQLite insert of the pulled pages
	RolePull        = "pull"        // initial pull into a fresh replica
	RolePush        = "push"        // push of queued local writes
	RoleIncremental = "incremental" // pull, then time the sync of server changes
	RoleLocalWrite  = "local-write" // Writer.Insert against a raw bun insert
	RoleRealtime    = "realtime"    // commit on the authority to row applied on a realtime replica
	RoleFleet       = "fleet"       // many replicas syncing periodically
)

// Spec tells a worker process what to do. It travels as JSON on the worker's
// command line.
type Spec struct {
	Role string `json:"role"`
	// Transport is the registered client transport a client role syncs
	// with (DefaultTransport when empty); URL is its endpoint on the
	// server, as the server worker printed it.
	Transport string `json:"transport,omitempty"`
	URL       string `json:"url,omitempty"`
	// Bench is the base URL of the server worker's own endpoints (commit
	// times, CPU time), on its HTTP listener.
	Bench string `json:"bench,omitempty"`
	// Store is the authority's store driver (server role): StoreSQLite
	// (the default) or StorePostgres; DB is its SQLite file or Postgres DSN.
	Store string `json:"store,omitempty"`
	DB    string `json:"db,omitempty"`
	// Dir is where a client keeps its replicas' files.
	Dir string `json:"dir,omitempty"`
	// N is the role's main size: rows to pull or push, iterations, writes,
	// replicas; M its second size (the changes of the incremental sync,
	// changes per sync of the fleet).
	N int `json:"n,omitempty"`
	M int `json:"m,omitempty"`
	// First is the number of the fleet's first replica in this process.
	First int `json:"first,omitempty"`
	// Duration and Interval pace the fleet.
	Duration time.Duration `json:"duration,omitempty"`
	Interval time.Duration `json:"interval,omitempty"`
	// CPUProfile, when set, is the file the worker writes its CPU profile to.
	CPUProfile string `json:"cpuprofile,omitempty"`
}

// Result is what a client worker prints as its last line: named figures,
// and raw samples (latencies in ms) when the parent computes percentiles.
type Result struct {
	Metrics map[string]float64 `json:"metrics"`
	Samples []float64          `json:"samples,omitempty"`
}

// readyLine is what a fleet worker prints when its replicas are set up; it
// then waits for a line on its standard input before starting the clock.
const readyLine = `{"ready":true}`

// Worker performs spec in this process: the server role until stdin is
// closed, a client role once, printing its Result as one JSON line on out.
func Worker(ctx context.Context, spec Spec, stdin io.Reader, out io.Writer) (err error) {
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("bench: cpu profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if cerr := f.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
	}
	if spec.Role == RoleServer {
		return serveRole(ctx, spec, stdin, out)
	}
	var res Result
	switch spec.Role {
	case RoleLimits:
		res, err = limitsRole(ctx, spec)
	case RolePull:
		res, err = pullRole(ctx, spec)
	case RolePush:
		res, err = pushRole(ctx, spec)
	case RoleIncremental:
		res, err = incrementalRole(ctx, spec)
	case RoleLocalWrite:
		res, err = localWriteRole(ctx, spec)
	case RoleRealtime:
		res, err = realtimeRole(ctx, spec)
	case RoleFleet:
		res, err = fleetRole(ctx, spec, stdin, out)
	default:
		return fmt.Errorf("bench: unknown worker role %q: %w", spec.Role, core.ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("bench: %s: %w", spec.Role, err)
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", line)
	return err
}

// ---- server ----

// The stores an authority can be on.
const (
	StoreSQLite   = "sqlite"   // a SQLite file, synchronous FULL
	StorePostgres = "postgres" // a PostgreSQL database
)

// DefaultTransport is the client transport of a client role that names
// none, and the one the limits and local-write scenarios use.
const DefaultTransport = "rest"

// recorder is the authority with the commit time of every applied op: Push
// returns once the batch's transaction has committed. It embeds the
// Service, so every interface the Service implements (Subscriber,
// Authenticator, Getter, ...) reaches the server halves unchanged.
type recorder struct {
	*server.Service
	mu      sync.Mutex
	commits map[string]int64 // id → Unix ns of the last commit
}

func (r *recorder) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	res, err := r.Service.Push(ctx, ops)
	now := time.Now().UnixNano()
	if err == nil && len(ops) > 0 && ops[0].Kind == Items.Kind() {
		r.mu.Lock()
		for i, pr := range res {
			if pr.Status == core.StatusApplied && len(r.commits) < 1_000_000 {
				r.commits[ops[i].ID] = now
			}
		}
		r.mu.Unlock()
	}
	return res, err
}

// benchPath is where the server role mounts its own endpoints: commits
// (the commit times) and cpu (the process's user+sys time).
const benchPath = "/_bench"

func (r *recorder) benchHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /commits", func(w http.ResponseWriter, _ *http.Request) {
		r.mu.Lock()
		b, err := json.Marshal(r.commits)
		r.mu.Unlock()
		writeJSON(w, b, err)
	})
	mux.HandleFunc("GET /cpu", func(w http.ResponseWriter, _ *http.Request) {
		b, err := json.Marshal(map[string]int64{"us": cpuTime().Microseconds()})
		writeJSON(w, b, err)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, b []byte, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// cpuTime is the user+sys CPU time of this process, all threads.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// authenticate makes every bearer token its own principal.
func authenticate(_ context.Context, token string) (core.Principal, error) {
	return core.Principal{ID: token}, nil
}

// scope gives each principal its own tasks; items are shared.
func scope(_ context.Context, p core.Principal, kind string) (*core.Filter, error) {
	if kind != Tasks.Kind() {
		return nil, nil
	}
	if p.ID == "" {
		return nil, fmt.Errorf("bench: tasks need a token: %w", core.ErrForbidden)
	}
	return &core.Filter{Field: "owner", Values: []string{p.ID}}, nil
}

// hello is the server worker's first line: where each wire form is served.
type hello struct {
	// Addr is the HTTP listener's address.
	Addr string `json:"addr"`
	// Endpoints maps each served transport to the URL its client opens:
	// http://host:port/ (REST), ws://host:port/ws, grpc://host:port, ...
	Endpoints map[string]string `json:"endpoints"`
	// Bench is the base URL of the worker's own endpoints.
	Bench string `json:"bench"`
}

// openAuthority opens the authority's store named by spec.
func openAuthority(ctx context.Context, spec Spec) (core.Store, error) {
	if spec.DB == "" {
		return nil, fmt.Errorf("bench: server: no db: %w", core.ErrInvalid)
	}
	switch spec.Store {
	case "", StoreSQLite:
		return core.OpenStore(ctx, StoreSQLite, spec.DB, map[string]any{"synchronous": "FULL"})
	case StorePostgres:
		return core.OpenStore(ctx, StorePostgres, spec.DB, nil)
	default:
		return nil, fmt.Errorf("bench: server: unknown store %q (known: %s, %s): %w", spec.Store, StoreSQLite, StorePostgres, core.ErrInvalid)
	}
}

// serveRole serves every registered server half over a recording
// authority: the HTTP halves mounted on one listener (server.NewHTTPMux),
// each half with a listener of its own on a port of its own, all on
// 127.0.0.1. It prints a hello line, then serves until stdin is closed.
func serveRole(ctx context.Context, spec Spec, stdin io.Reader, out io.Writer) error {
	st, err := openAuthority(ctx, spec)
	if err != nil {
		return err
	}
	defer st.Close()
	svc, err := server.New(ctx, st, &server.Options{
		Tables:       []core.Table{Items, Tasks},
		Authenticate: authenticate,
		Scope:        scope,
	})
	if err != nil {
		return err
	}
	defer svc.Close()
	rec := &recorder{Service: svc, commits: map[string]int64{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	addr := ln.Addr().String()

	var (
		servedMu sync.Mutex
		served   = map[string]string{}
	)
	servedFn := func() map[string]string {
		servedMu.Lock()
		defer servedMu.Unlock()
		m := make(map[string]string, len(served))
		for k, v := range served {
			m[k] = v
		}
		return m
	}
	type half struct {
		name string
		ts   server.TransportServer
	}
	var halves []half
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, h := range halves {
			_ = h.ts.Shutdown(sctx)
		}
	}()
	mounts := map[string]http.Handler{benchPath: rec.benchHandler()}
	endpoints := map[string]string{}
	errc := make(chan error, 8)
	logger := slog.New(slog.DiscardHandler)
	for _, name := range server.Transports() {
		d, err := server.LookupTransport(name)
		if err != nil {
			return err
		}
		tc := server.TransportConfig{Served: servedFn, Logger: logger}
		if d.OwnsListener() {
			tc.Addr = "127.0.0.1:0"
		}
		ts, err := server.OpenServer(ctx, name, rec, tc)
		if err != nil {
			return err
		}
		halves = append(halves, half{name, ts})
		switch h := ts.(type) {
		case server.HTTPTransport:
			mounts[d.Path] = h
			servedMu.Lock()
			served[name] = d.Path
			servedMu.Unlock()
			endpoints[name] = clientURL(ctx, name, []string{"http", "ws"}, addr, d.Path)
		case server.ListenerTransport:
			hl, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			servedMu.Lock()
			served[name] = hl.Addr().String()
			servedMu.Unlock()
			go func() { errc <- h.Serve(hl) }()
			endpoints[name] = clientURL(ctx, name, []string{"grpc", "http"}, hl.Addr().String(), "")
		}
	}
	mux, err := server.NewHTTPMux(mounts)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { errc <- srv.Serve(ln) }()
	line, err := json.Marshal(hello{Addr: addr, Endpoints: endpoints, Bench: "http://" + addr + benchPath})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "%s\n", line); err != nil {
		return err
	}
	// Serve until the parent closes our stdin (or dies).
	stopped := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// The halves end their streams first, then the requests in flight.
	for _, h := range halves {
		_ = h.ts.Shutdown(sctx)
	}
	_ = svc.Close()
	return srv.Shutdown(sctx)
}

// clientURL is the URL a transport's client opens to reach its half at
// host:port and path: the first of schemes its registered client opener
// accepts (an HTTP half's client may want ws:// rather than http://), or
// the first scheme when it has no client in this binary.
func clientURL(ctx context.Context, name string, schemes []string, hostport, path string) string {
	for _, scheme := range schemes {
		u := scheme + "://" + hostport + path
		tr, err := core.OpenTransport(ctx, name, u, nil)
		if err != nil {
			continue
		}
		if c, ok := tr.(io.Closer); ok {
			_ = c.Close()
		}
		return u
	}
	return schemes[0] + "://" + hostport + path
}

// Transports lists the transports the bench can run: every registered
// client transport that also has a server half, in the server halves'
// order (REST first).
func Transports() []string {
	clients := map[string]bool{}
	for _, name := range core.TransportDrivers() {
		clients[name] = true
	}
	var out []string
	for _, name := range server.Transports() {
		if clients[name] {
			out = append(out, name)
		}
	}
	return out
}

// Stores lists the authority stores the bench can run on.
func Stores() []string { return []string{StoreSQLite, StorePostgres} }

// ---- clients ----

func openReplica(ctx context.Context, path string) (*sqlite.Store, error) {
	return sqlite.Open(ctx, path, nil)
}

// openTransport opens the client of spec's transport at spec.URL, with
// token as its bearer token when not empty.
func openTransport(ctx context.Context, spec Spec, token string) (core.Transport, error) {
	name := spec.Transport
	if name == "" {
		name = DefaultTransport
	}
	var opts map[string]any
	if token != "" {
		opts = map[string]any{"token": token}
	}
	return core.OpenTransport(ctx, name, spec.URL, opts)
}

// newEngine opens a fresh replica at path syncing tables with the server
// over spec's transport; closing the engine closes the transport.
func newEngine(ctx context.Context, path string, spec Spec, token string, tables ...core.Table) (*core.Engine, *sqlite.Store, error) {
	tr, err := openTransport(ctx, spec, token)
	if err != nil {
		return nil, nil, err
	}
	var closers []io.Closer
	if c, ok := tr.(io.Closer); ok {
		closers = append(closers, c)
	}
	st, err := openReplica(ctx, path)
	if err != nil {
		for _, c := range closers {
			c.Close()
		}
		return nil, nil, err
	}
	eng, err := core.NewEngine(ctx, st, tr, &core.Options{Tables: tables, Closers: closers})
	if err != nil {
		st.Close()
		for _, c := range closers {
			c.Close()
		}
		return nil, nil, err
	}
	return eng, st, nil
}

func closeEngine(eng *core.Engine, st *sqlite.Store) {
	eng.Close()
	st.Close()
}

// serverCPU returns the server worker's CPU time so far.
func serverCPU(ctx context.Context, bench string) (time.Duration, error) {
	var v struct {
		US int64 `json:"us"`
	}
	if err := getJSON(ctx, bench+"/cpu", &v); err != nil {
		return 0, err
	}
	return time.Duration(v.US) * time.Microsecond, nil
}

func getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// cpuMeter measures the CPU time of the client (this process) and of the
// server worker between start and stop.
type cpuMeter struct {
	bench          string
	client, server time.Duration
}

func startCPU(ctx context.Context, bench string) (*cpuMeter, error) {
	m := &cpuMeter{bench: bench}
	if bench != "" {
		s, err := serverCPU(ctx, bench)
		if err != nil {
			return nil, fmt.Errorf("server CPU time: %w", err)
		}
		m.server = s
	}
	m.client = cpuTime()
	return m, nil
}

// stop adds the client's and the server's CPU time, in ms, to metrics as
// cpu_client_ms and cpu_server_ms.
func (m *cpuMeter) stop(ctx context.Context, metrics map[string]float64) error {
	client := cpuTime() - m.client
	metrics["cpu_client_ms"] = float64(client.Microseconds()) / 1000
	if m.bench == "" {
		return nil
	}
	s, err := serverCPU(ctx, m.bench)
	if err != nil {
		return fmt.Errorf("server CPU time: %w", err)
	}
	metrics["cpu_server_ms"] = float64((s - m.server).Microseconds()) / 1000
	return nil
}

// peakRSSMB is this process's peak resident set size in MB: VmHWM of
// /proc/self/status, else getrusage's maxrss.
func peakRSSMB() float64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				f := strings.Fields(rest)
				if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
					return kb / 1024
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		return float64(ru.Maxrss) / 1024 // KB on Linux
	}
	return 0
}

// wireItem is an item as the REST wire carries it.
type wireItem struct {
	ID        string  `json:"id"`
	UpdatedAt string  `json:"updated_at"`
	DeletedAt *string `json:"deleted_at"`
	EditedAt  *string `json:"edited_at"`
	Title     string  `json:"title"`
	Body      string  `json:"body"`
	Count     int     `json:"count"`
	Done      bool    `json:"done"`
}

type wirePage struct {
	Items         []wireItem `json:"items"`
	NextPageToken *string    `json:"nextPageToken"`
	Remaining     int64      `json:"remaining"`
}

// pageSize is the pull page size of every scenario (the engine's default).
const pageSize = 500

// fetchPages reads the whole item feed as the REST pages' raw bytes.
func fetchPages(ctx context.Context, base string) ([][]byte, error) {
	base = strings.TrimRight(base, "/")
	var pages [][]byte
	token := ""
	for {
		u := base + "/item?limit=" + strconv.Itoa(pageSize) + "&includeDeleted=true"
		if token != "" {
			u += "&pageToken=" + token
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(b))
		}
		var p struct {
			NextPageToken *string `json:"nextPageToken"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, err
		}
		pages = append(pages, b)
		if p.NextPageToken == nil || *p.NextPageToken == "" {
			return pages, nil
		}
		token = *p.NextPageToken
	}
}

// limitsRole measures the physical limits on the rows of the feed: JSON
// decode of the REST pages' bytes (encoding/json into typed structs), and a
// bulk bun insert of the same rows into a fresh replica file, pages of 500
// per transaction.
func limitsRole(ctx context.Context, spec Spec) (Result, error) {
	pages, err := fetchPages(ctx, spec.URL)
	if err != nil {
		return Result{}, err
	}
	var rows []*Item
	start := time.Now()
	for _, b := range pages {
		var p wirePage
		if err := json.Unmarshal(b, &p); err != nil {
			return Result{}, err
		}
		for i := range p.Items {
			w := &p.Items[i]
			rows = append(rows, &Item{ID: w.ID, Title: w.Title, Body: w.Body, Count: w.Count, Done: w.Done})
		}
	}
	decode := time.Since(start)
	// Timestamps are parsed outside the decode timing: encoding/json leaves
	// them as strings.
	i := 0
	for _, b := range pages {
		var p wirePage
		if err := json.Unmarshal(b, &p); err != nil {
			return Result{}, err
		}
		for _, w := range p.Items {
			t, err := core.ParseTime(w.UpdatedAt)
			if err != nil {
				return Result{}, err
			}
			rows[i].UpdatedAt = core.TimestampOf(t)
			i++
		}
	}
	if len(rows) != spec.N {
		return Result{}, fmt.Errorf("the feed has %d rows, want %d", len(rows), spec.N)
	}
	st, err := openReplica(ctx, spec.Dir+"/limit-insert.db")
	if err != nil {
		return Result{}, err
	}
	defer st.Close()
	if err := st.Register(ctx, Items); err != nil {
		return Result{}, err
	}
	start = time.Now()
	for lo := 0; lo < len(rows); lo += pageSize {
		page := rows[lo:min(lo+pageSize, len(rows))]
		err := st.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewInsert().Model(&page).Returning("NULL").Exec(ctx)
			return err
		})
		if err != nil {
			return Result{}, err
		}
	}
	insert := time.Since(start)
	n := float64(len(rows))
	return Result{Metrics: map[string]float64{
		"rows":       n,
		"decode_rps": n / decode.Seconds(),
		"insert_rps": n / insert.Seconds(),
	}}, nil
}

func pullRole(ctx context.Context, spec Spec) (Result, error) {
	eng, st, err := newEngine(ctx, spec.Dir+"/pull.db", spec, "", Items)
	if err != nil {
		return Result{}, err
	}
	defer closeEngine(eng, st)
	cpu, err := startCPU(ctx, spec.Bench)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	stats, err := eng.Sync(ctx)
	elapsed := time.Since(start)
	if err != nil {
		return Result{}, err
	}
	if stats.Pulled != spec.N {
		return Result{}, fmt.Errorf("pulled %d rows, want %d", stats.Pulled, spec.N)
	}
	m := map[string]float64{
		"rows":    float64(stats.Pulled),
		"seconds": elapsed.Seconds(),
		"rps":     float64(stats.Pulled) / elapsed.Seconds(),
		"rss_mb":  peakRSSMB(),
	}
	if err := cpu.stop(ctx, m); err != nil {
		return Result{}, err
	}
	return Result{Metrics: m}, nil
}

// enqueue writes items first..first+n-1 through the engine's Writer,
// offline, many rows per transaction (only the timed sync matters).
func enqueue(ctx context.Context, eng *core.Engine, first, n int) error {
	w := core.WriterFor(eng, Items)
	for lo := first; lo < first+n; lo += 500 {
		err := eng.Update(ctx, func(ctx context.Context, tx core.Tx) error {
			for i := lo; i < min(lo+500, first+n); i++ {
				if err := w.InsertTx(ctx, tx, NewItem(i)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// pushRole queues N writes offline, then times one push-only Sync.
func pushRole(ctx context.Context, spec Spec) (Result, error) {
	eng, st, err := newEngine(ctx, spec.Dir+"/push.db", spec, "", Items)
	if err != nil {
		return Result{}, err
	}
	defer closeEngine(eng, st)
	if err := enqueue(ctx, eng, 0, spec.N); err != nil {
		return Result{}, err
	}
	cpu, err := startCPU(ctx, spec.Bench)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	stats, err := eng.Sync(ctx, core.PullKinds())
	elapsed := time.Since(start)
	if err != nil {
		return Result{}, err
	}
	if stats.Pushed != spec.N || stats.Errors != 0 || stats.Conflicts != 0 {
		return Result{}, fmt.Errorf("pushed %d ops (%d errors, %d conflicts), want %d", stats.Pushed, stats.Errors, stats.Conflicts, spec.N)
	}
	m := map[string]float64{
		"ops":     float64(stats.Pushed),
		"seconds": elapsed.Seconds(),
		"ops_s":   float64(stats.Pushed) / elapsed.Seconds(),
	}
	if err := cpu.stop(ctx, m); err != nil {
		return Result{}, err
	}
	return Result{Metrics: m}, nil
}

// incrementalRole pulls the N seeded rows, has a second replica push M new
// rows, then times the first replica's Sync.
func incrementalRole(ctx context.Context, spec Spec) (Result, error) {
	eng, st, err := newEngine(ctx, spec.Dir+"/reader.db", spec, "", Items)
	if err != nil {
		return Result{}, err
	}
	defer closeEngine(eng, st)
	stats, err := eng.Sync(ctx)
	if err != nil {
		return Result{}, err
	}
	if stats.Pulled != spec.N {
		return Result{}, fmt.Errorf("first pull: %d rows, want %d", stats.Pulled, spec.N)
	}
	wr, wst, err := newEngine(ctx, spec.Dir+"/writer.db", spec, "", Items)
	if err != nil {
		return Result{}, err
	}
	defer closeEngine(wr, wst)
	if err := enqueue(ctx, wr, 10_000_000, spec.M); err != nil {
		return Result{}, err
	}
	if stats, err := wr.Sync(ctx, core.PullKinds()); err != nil || stats.Pushed != spec.M {
		return Result{}, fmt.Errorf("writer pushed %d of %d: %v", stats.Pushed, spec.M, err)
	}
	start := time.Now()
	stats, err = eng.Sync(ctx)
	elapsed := time.Since(start)
	if err != nil {
		return Result{}, err
	}
	if stats.Pulled != spec.M {
		return Result{}, fmt.Errorf("incremental pull: %d rows, want %d", stats.Pulled, spec.M)
	}
	return Result{Metrics: map[string]float64{
		"rows": float64(stats.Pulled),
		"ms":   float64(elapsed.Microseconds()) / 1000,
	}}, nil
}

// localWriteRole alternates one raw bun insert and one Writer.Insert of the
// same row, one row per transaction, so both see the same load.
func localWriteRole(ctx context.Context, spec Spec) (Result, error) {
	raw, err := openReplica(ctx, spec.Dir+"/raw.db")
	if err != nil {
		return Result{}, err
	}
	defer raw.Close()
	if err := raw.Register(ctx, Items); err != nil {
		return Result{}, err
	}
	eng, st, err := newEngine(ctx, spec.Dir+"/writer.db", spec, "", Items)
	if err != nil {
		return Result{}, err
	}
	defer closeEngine(eng, st)
	w := core.WriterFor(eng, Items)
	db := raw.DB()
	var rawTime, writerTime time.Duration
	for i := range spec.N {
		a, b := NewItem(i), NewItem(i)
		start := time.Now()
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := tx.NewInsert().Model(a).Returning("NULL").Exec(ctx)
			return err
		})
		if err != nil {
			return Result{}, err
		}
		mid := time.Now()
		if err := w.Insert(ctx, b); err != nil {
			return Result{}, err
		}
		rawTime += mid.Sub(start)
		writerTime += time.Since(mid)
	}
	n := float64(spec.N)
	return Result{Metrics: map[string]float64{
		"raw_rps":    n / rawTime.Seconds(),
		"writer_rps": n / writerTime.Seconds(),
		"ratio":      rawTime.Seconds() / writerTime.Seconds(),
	}}, nil
}

// realtimeRole writes N rows one at a time on replica A (each pushed at
// once) and, for each, waits for replica B — running core.Realtime() only —
// to apply it; the latency is B's apply time minus the authority's commit
// time.
func realtimeRole(ctx context.Context, spec Spec) (Result, error) {
	a, ast, err := newEngine(ctx, spec.Dir+"/a.db", spec, "", Items)
	if err != nil {
		return Result{}, err
	}
	defer closeEngine(a, ast)
	b, bst, err := newEngine(ctx, spec.Dir+"/b.db", spec, "", Items)
	if err != nil {
		return Result{}, err
	}
	defer closeEngine(b, bst)
	sub := b.Subscribe(4096)
	defer sub.Close()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- b.Run(rctx, core.Realtime()) }()
	defer func() { cancel(); <-runDone }()

	w := core.WriterFor(a, Items)
	// write pushes row i and waits up to wait for B to apply it; it returns
	// B's apply time, or ok false when B did not apply it in time.
	write := func(i int, wait time.Duration) (at time.Time, ok bool, err error) {
		item := NewItem(i)
		if err := w.Insert(ctx, item); err != nil {
			return at, false, err
		}
		if _, err := a.Sync(ctx, core.PullKinds()); err != nil {
			return at, false, err
		}
		timer := time.NewTimer(wait)
		defer timer.Stop()
		for {
			select {
			case ev, open := <-sub.C:
				if !open {
					return at, false, fmt.Errorf("B's events ended")
				}
				pp, isPage := ev.(core.PagePulled)
				if !isPage || pp.Kind != Items.Kind() || pp.Upserts == 0 {
					continue
				}
				if _, err := b.Get(ctx, Items.Kind(), item.ID); err != nil {
					continue // an earlier row's page
				}
				return pp.EventTime(), true, nil
			case <-timer.C:
				return at, false, nil
			case <-ctx.Done():
				return at, false, ctx.Err()
			}
		}
	}
	// B's event stream may not be up yet: warm up with rows of their own
	// until B applies one.
	for k := 1; ; k++ {
		_, ok, err := write(-k, 200*time.Millisecond)
		if err != nil {
			return Result{}, fmt.Errorf("warm-up: %w", err)
		}
		if ok {
			break
		}
		if k == 50 {
			return Result{}, fmt.Errorf("warm-up: B applied none of %d rows", k)
		}
	}
	// Drain what the warm-up left (late pages of earlier warm-up rows).
	for drained := false; !drained; {
		select {
		case <-sub.C:
		case <-time.After(50 * time.Millisecond):
			drained = true
		}
	}
	applied := make(map[string]time.Time, spec.N)
	for i := range spec.N {
		at, ok, err := write(i, 10*time.Second)
		if err != nil {
			return Result{}, err
		}
		if !ok {
			return Result{}, fmt.Errorf("row %d not applied on B within 10s", i)
		}
		applied[NewItem(i).ID] = at
	}
	commits, err := fetchCommits(ctx, spec.Bench)
	if err != nil {
		return Result{}, err
	}
	samples := make([]float64, 0, spec.N)
	for id, at := range applied {
		c, ok := commits[id]
		if !ok {
			return Result{}, fmt.Errorf("no commit time for %s", id)
		}
		samples = append(samples, float64(at.UnixNano()-c)/1e6)
	}
	return Result{
		Metrics: map[string]float64{"p50_ms": Percentile(samples, 50), "p99_ms": Percentile(samples, 99)},
		Samples: samples,
	}, nil
}

func fetchCommits(ctx context.Context, bench string) (map[string]int64, error) {
	var m map[string]int64
	if err := getJSON(ctx, bench+"/commits", &m); err != nil {
		return nil, err
	}
	return m, nil
}

// fleetRole runs N replicas (numbered from First) as goroutines, each with
// its own SQLite file and token (the server scopes it to its own tasks).
// Once all are set up it prints readyLine and waits for a line on stdin;
// then for Duration each replica, every Interval, writes M changes and
// syncs. The samples are the syncs' latencies in ms.
func fleetRole(ctx context.Context, spec Spec, stdin io.Reader, out io.Writer) (Result, error) {
	if spec.N <= 0 || spec.M <= 0 || spec.Duration <= 0 || spec.Interval <= 0 {
		return Result{}, fmt.Errorf("fleet needs replicas, changes, duration and interval: %w", core.ErrInvalid)
	}
	type replica struct {
		name string
		eng  *core.Engine
		st   *sqlite.Store
		w    *core.Writer[Task]
	}
	reps := make([]*replica, spec.N)
	defer func() {
		for _, r := range reps {
			if r != nil {
				closeEngine(r.eng, r.st)
			}
		}
	}()
	for i := range reps {
		name := fmt.Sprintf("r%04d", spec.First+i)
		eng, st, err := newEngine(ctx, fmt.Sprintf("%s/%s.db", spec.Dir, name), spec, name, Tasks)
		if err != nil {
			return Result{}, err
		}
		reps[i] = &replica{name: name, eng: eng, st: st, w: core.WriterFor(eng, Tasks)}
		if _, err := eng.Sync(ctx); err != nil {
			return Result{}, fmt.Errorf("%s: first sync: %w", name, err)
		}
	}
	if _, err := fmt.Fprintln(out, readyLine); err != nil {
		return Result{}, err
	}
	if _, err := bufio.NewReader(stdin).ReadString('\n'); err != nil {
		return Result{}, fmt.Errorf("waiting for the start: %w", err)
	}

	var (
		mu      sync.Mutex
		samples []float64
		errs    int
		pushed  int
		first   error
	)
	start := time.Now()
	end := start.Add(spec.Duration)
	var wg sync.WaitGroup
	for i, r := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the replicas over the interval.
			next := start.Add(time.Duration(i) * spec.Interval / time.Duration(len(reps)))
			for tick := 0; ; tick++ {
				if d := time.Until(next); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
				if time.Now().After(end) {
					return
				}
				next = next.Add(spec.Interval)
				err := r.eng.Update(ctx, func(ctx context.Context, tx core.Tx) error {
					for j := range spec.M {
						t := &Task{
							ID: fmt.Sprintf("%s-%d", r.name, j), Owner: r.name,
							Title: fmt.Sprintf("Task %d of replica %s, tick %d", j, r.name, tick),
							Body:  body, Count: tick, Done: tick%2 == 0,
						}
						var err error
						if tick == 0 {
							err = r.w.InsertTx(ctx, tx, t)
						} else {
							err = r.w.UpdateTx(ctx, tx, t)
						}
						if err != nil {
							return err
						}
					}
					return nil
				})
				t0 := time.Now()
				var stats core.Stats
				if err == nil {
					stats, err = r.eng.Sync(ctx)
				}
				ms := float64(time.Since(t0).Microseconds()) / 1000
				if err == nil && (stats.Errors > 0 || stats.Conflicts > 0 || stats.Pushed != spec.M) {
					err = fmt.Errorf("sync: pushed %d of %d, %d errors, %d conflicts", stats.Pushed, spec.M, stats.Errors, stats.Conflicts)
				}
				mu.Lock()
				samples = append(samples, ms)
				pushed += stats.Pushed
				if err != nil {
					errs++
					if first == nil {
						first = fmt.Errorf("%s: %w", r.name, err)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if first != nil {
		fmt.Fprintf(os.Stderr, "bench: fleet: %d failed syncs, first: %v\n", errs, first)
	}
	return Result{
		Metrics: map[string]float64{
			"syncs":   float64(len(samples)),
			"errors":  float64(errs),
			"pushed":  float64(pushed),
			"seconds": spec.Duration.Seconds(),
		},
		Samples: samples,
	}, nil
}
