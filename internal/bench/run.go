package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/pgtest"
)

// The scenarios, in the order they run.
const (
	ScenarioLimits      = "limits"
	ScenarioPull        = "pull-100k"
	ScenarioPullLarge   = "pull-1m"
	ScenarioPush        = "push"
	ScenarioIncremental = "incremental"
	ScenarioLocalWrite  = "local-write"
	ScenarioRealtime    = "realtime"
	ScenarioReplicas    = "replicas"
)

// Scenarios lists every scenario name, in run order.
func Scenarios() []string {
	return []string{ScenarioLimits, ScenarioPull, ScenarioPullLarge, ScenarioPush,
		ScenarioIncremental, ScenarioLocalWrite, ScenarioRealtime, ScenarioReplicas}
}

// Sizes are the sizes of the scenarios.
type Sizes struct {
	Pull               int           // rows of the initial pull (and of the limits)
	PullLarge          int           // rows of the large initial pull
	Push               int           // queued writes pushed
	IncrementalBase    int           // rows pulled before the incremental sync
	IncrementalChanges int           // server changes the incremental sync pulls
	LocalWrites        int           // Writer.Insert / raw insert pairs
	RealtimeWrites     int           // rows timed from commit to B
	Replicas           int           // replicas of the fleet
	ReplicaProcesses   int           // client processes the fleet runs in
	ChangesPerSync     int           // changes each fleet replica makes per sync
	FleetDuration      time.Duration // how long the fleet runs
	SyncInterval       time.Duration // how often each fleet replica syncs
}

// DefaultSizes are the sizes of the benchmark issue.
func DefaultSizes() Sizes {
	return Sizes{
		Pull: 100_000, PullLarge: 1_000_000, Push: 10_000,
		IncrementalBase: 10_000, IncrementalChanges: 1_000,
		LocalWrites: 2_000, RealtimeWrites: 200,
		Replicas: 200, ReplicaProcesses: 2, ChangesPerSync: 5,
		FleetDuration: 20 * time.Second, SyncInterval: time.Second,
	}
}

// QuickSizes are tiny sizes for a smoke run.
func QuickSizes() Sizes {
	return Sizes{
		Pull: 1_000, PullLarge: 3_000, Push: 200,
		IncrementalBase: 500, IncrementalChanges: 50,
		LocalWrites: 50, RealtimeWrites: 10,
		Replicas: 4, ReplicaProcesses: 2, ChangesPerSync: 5,
		FleetDuration: 1500 * time.Millisecond, SyncInterval: 500 * time.Millisecond,
	}
}

// Config configures Run.
type Config struct {
	// Command starts a worker: Command followed by "--spec" and the Spec as
	// JSON (e.g. the offsync binary and "bench-worker").
	Command []string
	// Dir is the work directory (seeded files, replicas); a fresh temporary
	// directory, removed at the end, when empty.
	Dir string
	// Runs is the number of repetitions of each scenario (the reported value
	// is their median); default 3.
	Runs int
	// Only selects scenarios by name; all when empty. The limits scenario is
	// added when a scenario whose target is a ratio to it is selected.
	Only []string
	// Transports are the client transports each scenario runs on (see
	// Transports); DefaultTransport when empty.
	Transports []string
	// Stores are the authority stores each scenario runs on (StoreSQLite,
	// StorePostgres); StoreSQLite when empty. Postgres is the server of
	// OFFSYNC_POSTGRES_DSN, else a cluster of the run's own, started with
	// fsync and synchronous_commit on (durable, as the SQLite authority).
	Stores []string
	// Full runs every cell (scenario × transport × store) Runs times. By
	// default the cells Reduced names run once, to keep a run of every
	// transport and store within the time budget.
	Full bool
	// Sizes are the scenario sizes; DefaultSizes when zero.
	Sizes Sizes
	// Quick marks a smoke run (reported as such).
	Quick bool
	// CPUProfileDir, when set, receives a CPU profile of every worker.
	CPUProfileDir string
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
}

// Row is one figure of the report.
type Row struct {
	Scenario string `json:"scenario"`
	// Transport and Store are the cell's client transport and authority
	// store; empty for the scenarios measured on the client alone
	// (limits, local-write). A summary row names the transport that
	// reached the best figure as "fastest=NAME".
	Transport string    `json:"transport,omitempty"`
	Store     string    `json:"store,omitempty"`
	Metric    string    `json:"metric"`
	Unit      string    `json:"unit"`
	Value     float64   `json:"value"` // median of the runs
	Runs      []float64 `json:"runs"`
	// Limit is the physical limit the value is compared to (the median
	// of the run's limit measurements), and Ratio is Value / Limit; both 0
	// (null in JSON) when the row has none. A row's target applies to its
	// ratio when it has a limit, else to its value.
	Limit  float64 `json:"limit"`
	Ratio  float64 `json:"ratio"`
	Target string  `json:"target,omitempty"`
	// Status is "met", "missed" or "info" (no target); empty in a quick
	// run, whose tiny sizes prove nothing.
	Status string `json:"status,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model,omitempty"`
	GoVersion string `json:"go"`
	LoadAvg   string `json:"loadavg_before,omitempty"`
}

// Report is the outcome of Run.
type Report struct {
	Started    time.Time `json:"started"`
	Seconds    float64   `json:"seconds"`
	Runs       int       `json:"runs"`
	Quick      bool      `json:"quick"`
	Full       bool      `json:"full"`
	Sizes      Sizes     `json:"sizes"`
	Scenarios  []string  `json:"scenarios"`
	Transports []string  `json:"transports"`
	Stores     []string  `json:"stores"`
	// Postgres describes the Postgres authority's server, when used.
	Postgres string  `json:"postgres,omitempty"`
	Machine  Machine `json:"machine"`
	Rows     []Row   `json:"results"`
}

// Status values of a Row.
const (
	StatusMet    = "met"
	StatusMissed = "missed"
	StatusInfo   = "info"
)

// Run runs the selected scenarios on every selected transport and store and
// returns the report.
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	if len(cfg.Command) == 0 {
		return nil, fmt.Errorf("bench: no worker command: %w", core.ErrInvalid)
	}
	if cfg.Runs == 0 {
		cfg.Runs = 3
	}
	if cfg.Runs < 0 {
		return nil, fmt.Errorf("bench: %d runs: %w", cfg.Runs, core.ErrInvalid)
	}
	if cfg.Sizes == (Sizes{}) {
		cfg.Sizes = DefaultSizes()
	}
	selected, err := selectScenarios(cfg.Only)
	if err != nil {
		return nil, err
	}
	if cfg.Transports, err = checkNames("transport", cfg.Transports, DefaultTransport, Transports()); err != nil {
		return nil, err
	}
	if cfg.Stores, err = checkNames("store", cfg.Stores, StoreSQLite, Stores()); err != nil {
		return nil, err
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Dir == "" {
		dir, err := os.MkdirTemp("", "offsync-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	r := &runner{cfg: cfg, seeded: map[string]seedDB{}, figures: map[string][]float64{}, shown: map[string]bool{}}
	rep = &Report{Started: time.Now(), Runs: cfg.Runs, Quick: cfg.Quick, Full: cfg.Full, Sizes: cfg.Sizes,
		Scenarios: selected, Transports: cfg.Transports, Stores: cfg.Stores, Machine: machine()}
	if slices.Contains(cfg.Stores, StorePostgres) {
		start := time.Now()
		r.pg, err = pgtest.StartServer(postgresSettings...)
		if err != nil {
			return nil, fmt.Errorf("bench: the Postgres authority: %w", err)
		}
		defer func() {
			if cerr := r.pg.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("bench: stop Postgres: %w", cerr)
			}
		}()
		if r.pg.External() {
			rep.Postgres = "the server of " + pgtest.EnvDSN + " (its own durability settings)"
		} else {
			rep.Postgres = "a cluster of the run's own, " + strings.Join(postgresSettings, ", ")
		}
		fmt.Fprintf(r.cfg.Progress, "bench: Postgres: %s, up in %.1fs\n", rep.Postgres, time.Since(start).Seconds())
	}
	steps := map[string]func(context.Context) error{
		ScenarioLimits:      r.limits,
		ScenarioPull:        func(ctx context.Context) error { return r.pull(ctx, ScenarioPull, cfg.Sizes.Pull) },
		ScenarioPullLarge:   func(ctx context.Context) error { return r.pull(ctx, ScenarioPullLarge, cfg.Sizes.PullLarge) },
		ScenarioPush:        r.push,
		ScenarioIncremental: r.incremental,
		ScenarioLocalWrite:  r.localWrite,
		ScenarioRealtime:    r.realtime,
		ScenarioReplicas:    r.replicas,
	}
	for _, name := range selected {
		start := time.Now()
		fmt.Fprintf(r.cfg.Progress, "bench: %s ...\n", name)
		if err := steps[name](ctx); err != nil {
			return nil, fmt.Errorf("bench: %s: %w", name, err)
		}
		fmt.Fprintf(r.cfg.Progress, "bench: %s done in %.1fs\n", name, time.Since(start).Seconds())
	}
	rep.Rows = r.rows(selected)
	rep.Seconds = time.Since(rep.Started).Seconds()
	return rep, nil
}

// postgresSettings make the run's own Postgres cluster durable, as the
// SQLite authority is (synchronous FULL): every commit is flushed.
var postgresSettings = []string{"fsync=on", "synchronous_commit=on", "full_page_writes=on", "max_connections=400"}

// checkNames checks a list of transports or stores against the known ones:
// "all" is every known one, none is def.
func checkNames(what string, names []string, def string, known []string) ([]string, error) {
	if len(names) == 0 {
		names = []string{def}
	}
	if slices.Contains(names, "all") {
		if len(names) > 1 {
			return nil, fmt.Errorf("bench: %s \"all\" with others: %w", what, core.ErrInvalid)
		}
		return slices.Clone(known), nil
	}
	var out []string
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("bench: unknown %s %q (known: %s, all): %w", what, n, strings.Join(known, ", "), core.ErrInvalid)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// selectScenarios checks --only's names and returns them in run order.
func selectScenarios(only []string) ([]string, error) {
	all := Scenarios()
	if len(only) == 0 {
		return all, nil
	}
	for _, name := range only {
		if !slices.Contains(all, name) {
			return nil, fmt.Errorf("bench: unknown scenario %q (known: %s): %w", name, strings.Join(all, ", "), core.ErrInvalid)
		}
	}
	// The ratio targets need the limits measured in the same run.
	for _, name := range []string{ScenarioPull, ScenarioPullLarge, ScenarioPush} {
		if slices.Contains(only, name) {
			only = append(slices.Clone(only), ScenarioLimits)
			break
		}
	}
	var out []string
	for _, name := range all {
		if slices.Contains(only, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

func machine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return m
}

// runner runs the scenarios and keeps every run's figures under
// "scenario|transport|store|metric".
type runner struct {
	cfg     Config
	pg      *pgtest.Server
	seeded  map[string]seedDB // store|rows → seeded authority
	figures map[string][]float64
	shown   map[string]bool // stores whose server's endpoints were printed
	seq     int
}

// cell is one transport and store a scenario runs on; both empty for the
// scenarios measured on the client alone.
type cell struct{ transport, store string }

func (c cell) String() string {
	if c.transport == "" {
		return "client"
	}
	return c.transport + "/" + c.store
}

// clientOnly reports whether a scenario is measured on the client alone
// (its figures do not depend on the transport or the authority's store).
func clientOnly(scenario string) bool {
	return scenario == ScenarioLimits || scenario == ScenarioLocalWrite
}

// cells lists the cells a scenario runs on: every store, every transport,
// but for the pairs the plan leaves out (see Reduced).
func (r *runner) cells(scenario string) []cell {
	if clientOnly(scenario) {
		return []cell{{}}
	}
	var out []cell
	for _, st := range r.cfg.Stores {
		for _, tr := range r.cfg.Transports {
			if c := (cell{tr, st}); r.runsOf(scenario, c) > 0 {
				out = append(out, c)
			}
		}
	}
	return out
}

// Reduced describes the plan of the two long scenarios (a million rows; a
// 200-replica fleet for 20 s), which keeps a run of every transport on both
// stores within ten minutes on a two-core machine: Config.Full runs every
// cell --runs times instead. The sizes are never reduced.
const Reduced = "pull-1m and replicas run --runs times on the first transport and store, " +
	"once on each other transport (first store) and each other store (first transport), " +
	"and not on the other pairs"

// heavy reports whether a scenario is one of the two long ones.
func heavy(scenario string) bool {
	return scenario == ScenarioPullLarge || scenario == ScenarioReplicas
}

// runsOf is how many times a cell runs (0: not at all; see Reduced).
func (r *runner) runsOf(scenario string, c cell) int {
	if clientOnly(scenario) || r.cfg.Full || !heavy(scenario) {
		return r.cfg.Runs
	}
	firstTransport, firstStore := c.transport == r.cfg.Transports[0], c.store == r.cfg.Stores[0]
	switch {
	case firstTransport && firstStore:
		return r.cfg.Runs
	case firstTransport || firstStore:
		return 1
	}
	return 0
}

// maxRuns is the most runs of any cell of a scenario.
func (r *runner) maxRuns(scenario string) int {
	n := 0
	for _, c := range r.cells(scenario) {
		n = max(n, r.runsOf(scenario, c))
	}
	return n
}

func key(scenario string, c cell, metric string) string {
	return scenario + "|" + c.transport + "|" + c.store + "|" + metric
}

func (r *runner) add(scenario string, c cell, metric string, v float64) {
	k := key(scenario, c, metric)
	r.figures[k] = append(r.figures[k], v)
}

// addCPU records the client's and the server's CPU time per 10,000 ops.
func (r *runner) addCPU(scenario string, c cell, res Result, ops int) {
	for _, side := range []string{"client", "server"} {
		if ms, ok := res.Metrics["cpu_"+side+"_ms"]; ok && ops > 0 {
			r.add(scenario, c, "cpu_"+side+"_10k", ms*10_000/float64(ops))
		}
	}
}

func (r *runner) progress(scenario string, c cell, run int, format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "bench:   %s %s run %d: %s\n", scenario, c, run+1, fmt.Sprintf(format, args...))
}

// dir makes a fresh directory for one worker.
func (r *runner) dir(name string) (string, error) {
	r.seq++
	d := filepath.Join(r.cfg.Dir, fmt.Sprintf("%03d-%s", r.seq, name))
	return d, os.MkdirAll(d, 0o755)
}

// authority is a store an authority server runs on: a SQLite file or a
// Postgres DSN, and how to remove it once its server has stopped.
type authority struct {
	store, db string
	remove    func()
}

// seedDB is a seeded authority: the SQLite file or Postgres DSN, and the
// Postgres database's name (the template of its copies).
type seedDB struct{ db, name string }

// seed returns the authority holding n seeded rows on store, made once per
// run of the harness. It is shared: scenarios only read it, or copy it.
func (r *runner) seed(ctx context.Context, store string, n int) (seedDB, error) {
	k := store + "|" + strconv.Itoa(n)
	if s, ok := r.seeded[k]; ok {
		return s, nil
	}
	start := time.Now()
	var s seedDB
	switch store {
	case StoreSQLite:
		s.db = filepath.Join(r.cfg.Dir, fmt.Sprintf("seed-%d.db", n))
		if err := Seed(ctx, s.db, n); err != nil {
			return seedDB{}, err
		}
	case StorePostgres:
		dsn, name, err := r.pg.CreateDB("")
		if err != nil {
			return seedDB{}, err
		}
		st, err := core.OpenStore(ctx, StorePostgres, dsn, nil)
		if err != nil {
			return seedDB{}, err
		}
		err = SeedStore(ctx, st, n)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return seedDB{}, err
		}
		s = seedDB{db: dsn, name: name}
	}
	fmt.Fprintf(r.cfg.Progress, "bench: seeded %d rows on %s in %.1fs\n", n, store, time.Since(start).Seconds())
	r.seeded[k] = s
	return s, nil
}

// shared returns the shared seeded authority of n rows, to read.
func (r *runner) shared(ctx context.Context, store string, n int) (authority, error) {
	s, err := r.seed(ctx, store, n)
	return authority{store: store, db: s.db, remove: func() {}}, err
}

// copySeed returns a private copy of the authority holding n rows on store,
// for a scenario that writes to it.
func (r *runner) copySeed(ctx context.Context, store string, n int) (authority, error) {
	src, err := r.seed(ctx, store, n)
	if err != nil {
		return authority{}, err
	}
	if store == StorePostgres {
		return r.newPostgres(src.name)
	}
	d, err := r.dir("auth")
	if err != nil {
		return authority{}, err
	}
	dst := filepath.Join(d, "auth.db")
	b, err := os.ReadFile(src.db)
	if err != nil {
		return authority{}, err
	}
	return authority{store: store, db: dst, remove: func() { os.RemoveAll(d) }}, os.WriteFile(dst, b, 0o644)
}

// freshAuthority returns a new, empty authority on store.
func (r *runner) freshAuthority(store string) (authority, error) {
	if store == StorePostgres {
		return r.newPostgres("")
	}
	d, err := r.dir("auth")
	if err != nil {
		return authority{}, err
	}
	return authority{store: store, db: filepath.Join(d, "auth.db"), remove: func() { os.RemoveAll(d) }}, nil
}

// newPostgres creates a database, a copy of template when not empty. A
// template whose server has just closed its connections may still be in
// use for a moment: the copy is tried again.
func (r *runner) newPostgres(template string) (authority, error) {
	var lastErr error
	for range 50 {
		dsn, name, err := r.pg.CreateDB(template)
		if err == nil {
			return authority{store: StorePostgres, db: dsn, remove: func() {
				if err := r.pg.DropDB(name); err != nil {
					fmt.Fprintf(r.cfg.Progress, "bench: %v\n", err)
				}
			}}, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return authority{}, lastErr
}

// proc is a running worker.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, line by line; closed at EOF
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (r *runner) start(ctx context.Context, name string, spec Spec) (*proc, error) {
	if r.cfg.CPUProfileDir != "" {
		r.seq++
		spec.CPUProfile = filepath.Join(r.cfg.CPUProfileDir, fmt.Sprintf("%03d-%s-%s.pprof", r.seq, name, spec.Role))
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	args := append(slices.Clone(r.cfg.Command[1:]), "--spec", string(b))
	cmd := exec.CommandContext(ctx, r.cfg.Command[0], args...)
	p := &proc{name: name + "/" + spec.Role, cmd: cmd, lines: make(chan string, 16), stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// line returns the worker's next line of output.
func (p *proc) line(ctx context.Context) (string, error) {
	select {
	case l, ok := <-p.lines:
		if !ok {
			<-p.done
			return "", p.failure("exited without answering")
		}
		return l, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (p *proc) failure(what string) error {
	msg := strings.TrimSpace(p.stderr.String())
	if len(msg) > 4000 {
		msg = "..." + msg[len(msg)-4000:]
	}
	return fmt.Errorf("worker %s %s (%v): %s", p.name, what, p.err, msg)
}

// result waits for a client worker's Result and its exit.
func (p *proc) result(ctx context.Context) (Result, error) {
	var last string
	for {
		l, err := p.line(ctx)
		if err != nil {
			if last != "" {
				break
			}
			return Result{}, err
		}
		last = l
	}
	<-p.done
	if p.err != nil {
		return Result{}, p.failure("failed")
	}
	var res Result
	if err := json.Unmarshal([]byte(last), &res); err != nil || res.Metrics == nil {
		return Result{}, fmt.Errorf("worker %s: bad result line %q: %v", p.name, last, err)
	}
	return res, nil
}

// stop closes the worker's stdin (a server's signal to stop) and waits.
func (p *proc) stop() error {
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	for range p.lines {
	}
	if p.err != nil {
		return p.failure("failed")
	}
	return nil
}

// serverProc is a running server worker.
type serverProc struct {
	*proc
	hello
}

// endpoint is the URL of transport name on the server.
func (s *serverProc) endpoint(name string) (string, error) {
	u, ok := s.Endpoints[name]
	if !ok {
		return "", fmt.Errorf("the server serves no %q (it serves %v)", name, s.Endpoints)
	}
	return u, nil
}

func (r *runner) startServer(ctx context.Context, name string, a authority) (*serverProc, error) {
	p, err := r.start(ctx, name+"-"+a.store, Spec{Role: RoleServer, Store: a.store, DB: a.db})
	if err != nil {
		return nil, err
	}
	l, err := p.line(ctx)
	if err != nil {
		p.stop()
		return nil, err
	}
	s := &serverProc{proc: p}
	if err := json.Unmarshal([]byte(l), &s.hello); err != nil || s.Addr == "" || len(s.Endpoints) == 0 {
		p.stop()
		return nil, fmt.Errorf("server worker: bad first line %q", l)
	}
	if !r.shown[a.store] {
		r.shown[a.store] = true
		var eps []string
		for _, name := range slices.Sorted(maps.Keys(s.Endpoints)) {
			eps = append(eps, name+" "+s.Endpoints[name])
		}
		fmt.Fprintf(r.cfg.Progress, "bench: the server on %s serves %s\n", a.store, strings.Join(eps, ", "))
	}
	return s, nil
}

// client runs one client worker to completion, on transport c.transport of
// server s (DefaultTransport for a client-only scenario).
func (r *runner) client(ctx context.Context, name string, s *serverProc, c cell, spec Spec) (Result, error) {
	spec.Transport = c.transport
	if spec.Transport == "" {
		spec.Transport = DefaultTransport
	}
	u, err := s.endpoint(spec.Transport)
	if err != nil {
		return Result{}, err
	}
	spec.URL, spec.Bench = u, s.Bench
	d, err := r.dir(spec.Role)
	if err != nil {
		return Result{}, err
	}
	spec.Dir = d
	p, err := r.start(ctx, name+"-"+spec.Transport, spec)
	if err != nil {
		return Result{}, err
	}
	p.stdin.Close()
	res, err := p.result(ctx)
	os.RemoveAll(d)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", c, err)
	}
	return res, nil
}

// withServer runs fn against a server worker over a, stopping it and
// removing a after.
func (r *runner) withServer(ctx context.Context, name string, a authority, fn func(s *serverProc) error) error {
	defer a.remove()
	s, err := r.startServer(ctx, name, a)
	if err != nil {
		return err
	}
	ferr := fn(s)
	serr := s.stop()
	if ferr != nil {
		return ferr
	}
	return serr
}

// limits measures the physical limits on the rows of the 100k pull: the
// JSON decode of the REST pages and the SQLite insert, on the client.
func (r *runner) limits(ctx context.Context) error {
	a, err := r.shared(ctx, StoreSQLite, r.cfg.Sizes.Pull)
	if err != nil {
		return err
	}
	c := cell{}
	return r.withServer(ctx, ScenarioLimits, a, func(s *serverProc) error {
		for run := range r.cfg.Runs {
			res, err := r.client(ctx, ScenarioLimits, s, c, Spec{Role: RoleLimits, N: r.cfg.Sizes.Pull})
			if err != nil {
				return err
			}
			r.add(ScenarioLimits, c, "decode_rps", res.Metrics["decode_rps"])
			r.add(ScenarioLimits, c, "insert_rps", res.Metrics["insert_rps"])
			r.progress(ScenarioLimits, c, run, "decode %s rec/s, insert %s rec/s",
				formatNum(res.Metrics["decode_rps"]), formatNum(res.Metrics["insert_rps"]))
		}
		return nil
	})
}

// pull runs the initial pull of n rows: one server per store over the
// seeded authority, the transports in turn within each run.
func (r *runner) pull(ctx context.Context, name string, n int) error {
	for _, store := range r.cfg.Stores {
		a, err := r.shared(ctx, store, n)
		if err != nil {
			return err
		}
		err = r.withServer(ctx, name, a, func(s *serverProc) error {
			for run := range r.maxRuns(name) {
				for _, tr := range r.cfg.Transports {
					c := cell{tr, store}
					if run >= r.runsOf(name, c) {
						continue
					}
					res, err := r.client(ctx, name, s, c, Spec{Role: RolePull, N: n})
					if err != nil {
						return err
					}
					r.add(name, c, "rps", res.Metrics["rps"])
					r.add(name, c, "rss_mb", res.Metrics["rss_mb"])
					r.addCPU(name, c, res, n)
					r.progress(name, c, run, "%s rec/s, peak RSS %s MB", formatNum(res.Metrics["rps"]), formatNum(res.Metrics["rss_mb"]))
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

// eachCell runs fn for every cell of scenario, run by run (so that the
// transports and stores of one run are measured side by side), each on a
// server of its own over the authority fresh makes.
func (r *runner) eachCell(ctx context.Context, scenario string, fresh func(store string) (authority, error),
	fn func(s *serverProc, c cell, run int) error) error {
	for run := range r.maxRuns(scenario) {
		for _, c := range r.cells(scenario) {
			if run >= r.runsOf(scenario, c) {
				continue
			}
			a, err := fresh(c.store)
			if err != nil {
				return err
			}
			err = r.withServer(ctx, scenario, a, func(s *serverProc) error { return fn(s, c, run) })
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) push(ctx context.Context) error {
	n := r.cfg.Sizes.Push
	return r.eachCell(ctx, ScenarioPush, r.freshAuthority, func(s *serverProc, c cell, run int) error {
		res, err := r.client(ctx, ScenarioPush, s, c, Spec{Role: RolePush, N: n})
		if err != nil {
			return err
		}
		r.add(ScenarioPush, c, "ops_s", res.Metrics["ops_s"])
		r.addCPU(ScenarioPush, c, res, n)
		r.progress(ScenarioPush, c, run, "%s ops/s", formatNum(res.Metrics["ops_s"]))
		return nil
	})
}

func (r *runner) incremental(ctx context.Context) error {
	sz := r.cfg.Sizes
	fresh := func(store string) (authority, error) { return r.copySeed(ctx, store, sz.IncrementalBase) }
	return r.eachCell(ctx, ScenarioIncremental, fresh, func(s *serverProc, c cell, run int) error {
		res, err := r.client(ctx, ScenarioIncremental, s, c, Spec{Role: RoleIncremental,
			N: sz.IncrementalBase, M: sz.IncrementalChanges})
		if err != nil {
			return err
		}
		r.add(ScenarioIncremental, c, "ms", res.Metrics["ms"])
		r.progress(ScenarioIncremental, c, run, "%s ms", formatNum(res.Metrics["ms"]))
		return nil
	})
}

func (r *runner) localWrite(ctx context.Context) error {
	a, err := r.freshAuthority(StoreSQLite)
	if err != nil {
		return err
	}
	c := cell{}
	return r.withServer(ctx, ScenarioLocalWrite, a, func(s *serverProc) error {
		for run := range r.cfg.Runs {
			res, err := r.client(ctx, ScenarioLocalWrite, s, c, Spec{Role: RoleLocalWrite, N: r.cfg.Sizes.LocalWrites})
			if err != nil {
				return err
			}
			for _, m := range []string{"writer_rps", "raw_rps", "ratio"} {
				r.add(ScenarioLocalWrite, c, m, res.Metrics[m])
			}
			r.progress(ScenarioLocalWrite, c, run, "writer/raw %s", formatNum(res.Metrics["ratio"]))
		}
		return nil
	})
}

func (r *runner) realtime(ctx context.Context) error {
	return r.eachCell(ctx, ScenarioRealtime, r.freshAuthority, func(s *serverProc, c cell, run int) error {
		res, err := r.client(ctx, ScenarioRealtime, s, c, Spec{Role: RoleRealtime, N: r.cfg.Sizes.RealtimeWrites})
		if err != nil {
			return err
		}
		p50, p99 := Percentile(res.Samples, 50), Percentile(res.Samples, 99)
		r.add(ScenarioRealtime, c, "p50_ms", p50)
		r.add(ScenarioRealtime, c, "p99_ms", p99)
		r.progress(ScenarioRealtime, c, run, "p50 %s ms, p99 %s ms", formatNum(p50), formatNum(p99))
		return nil
	})
}

// replicas runs the fleet in ReplicaProcesses client processes against one
// server, starting their clocks together once every replica is set up.
func (r *runner) replicas(ctx context.Context) error {
	sz := r.cfg.Sizes
	procs := max(1, min(sz.ReplicaProcesses, sz.Replicas))
	return r.eachCell(ctx, ScenarioReplicas, r.freshAuthority, func(s *serverProc, c cell, run int) error {
		u, err := s.endpoint(c.transport)
		if err != nil {
			return err
		}
		var workers []*proc
		defer func() {
			for _, p := range workers {
				p.stdin.Close()
				<-p.done
			}
		}()
		first := 0
		for i := range procs {
			n := sz.Replicas / procs
			if i < sz.Replicas%procs {
				n++
			}
			d, err := r.dir(RoleFleet)
			if err != nil {
				return err
			}
			p, err := r.start(ctx, ScenarioReplicas+"-"+c.transport, Spec{Role: RoleFleet, Transport: c.transport, URL: u,
				Bench: s.Bench, Dir: d, N: n, M: sz.ChangesPerSync,
				First: first, Duration: sz.FleetDuration, Interval: sz.SyncInterval})
			if err != nil {
				return err
			}
			workers = append(workers, p)
			first += n
		}
		for _, p := range workers {
			l, err := p.line(ctx)
			if err != nil {
				return err
			}
			if l != readyLine {
				return fmt.Errorf("fleet worker: unexpected line %q", l)
			}
		}
		for _, p := range workers {
			if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
				return err
			}
		}
		var samples []float64
		var syncs, errs, pushed float64
		for _, p := range workers {
			res, err := p.result(ctx)
			if err != nil {
				return err
			}
			samples = append(samples, res.Samples...)
			syncs += res.Metrics["syncs"]
			errs += res.Metrics["errors"]
			pushed += res.Metrics["pushed"]
		}
		secs := sz.FleetDuration.Seconds()
		p99 := Percentile(samples, 99)
		r.add(ScenarioReplicas, c, "syncs_s", syncs/secs)
		r.add(ScenarioReplicas, c, "changes_s", pushed/secs)
		r.add(ScenarioReplicas, c, "p50_ms", Percentile(samples, 50))
		r.add(ScenarioReplicas, c, "p99_ms", p99)
		r.add(ScenarioReplicas, c, "errors", errs)
		r.progress(ScenarioReplicas, c, run, "%s syncs/s, p99 %s ms, %s failed", formatNum(syncs/secs), formatNum(p99), formatNum(errs))
		return nil
	})
}
