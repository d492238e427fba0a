package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/offsync/offsync/core"
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
	Scenario string    `json:"scenario"`
	Metric   string    `json:"metric"`
	Unit     string    `json:"unit"`
	Value    float64   `json:"value"` // median of the runs
	Runs     []float64 `json:"runs"`
	Target   string    `json:"target,omitempty"`
	// Status is "met", "missed" or "info" (no target).
	Status string `json:"status"`
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
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"`
	Runs      int       `json:"runs"`
	Quick     bool      `json:"quick"`
	Sizes     Sizes     `json:"sizes"`
	Scenarios []string  `json:"scenarios"`
	Machine   Machine   `json:"machine"`
	Rows      []Row     `json:"results"`
}

// Status values of a Row.
const (
	StatusMet    = "met"
	StatusMissed = "missed"
	StatusInfo   = "info"
)

// Run runs the selected scenarios and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
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
	r := &runner{cfg: cfg, seeded: map[int]string{}, figures: map[string][]float64{}}
	rep := &Report{Started: time.Now(), Runs: cfg.Runs, Quick: cfg.Quick, Sizes: cfg.Sizes,
		Scenarios: selected, Machine: machine()}
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
// "scenario/metric".
type runner struct {
	cfg     Config
	seeded  map[int]string // rows → seeded authority file
	figures map[string][]float64
	seq     int
}

func (r *runner) add(scenario, metric string, v float64) {
	k := scenario + "/" + metric
	r.figures[k] = append(r.figures[k], v)
}

// dir makes a fresh directory for one worker.
func (r *runner) dir(name string) (string, error) {
	r.seq++
	d := filepath.Join(r.cfg.Dir, fmt.Sprintf("%03d-%s", r.seq, name))
	return d, os.MkdirAll(d, 0o755)
}

// seed returns an authority file holding n seeded rows, made once per run of
// the harness.
func (r *runner) seed(ctx context.Context, n int) (string, error) {
	if p, ok := r.seeded[n]; ok {
		return p, nil
	}
	p := filepath.Join(r.cfg.Dir, fmt.Sprintf("seed-%d.db", n))
	start := time.Now()
	if err := Seed(ctx, p, n); err != nil {
		return "", err
	}
	fmt.Fprintf(r.cfg.Progress, "bench: seeded %d rows in %.1fs\n", n, time.Since(start).Seconds())
	r.seeded[n] = p
	return p, nil
}

// copySeed returns a private copy of the authority file holding n rows, for
// a scenario that writes to it.
func (r *runner) copySeed(ctx context.Context, n int) (string, error) {
	src, err := r.seed(ctx, n)
	if err != nil {
		return "", err
	}
	d, err := r.dir("auth")
	if err != nil {
		return "", err
	}
	dst := filepath.Join(d, "auth.db")
	b, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	return dst, os.WriteFile(dst, b, 0o644)
}

// freshAuthority returns the path of a new, empty authority file.
func (r *runner) freshAuthority() (string, error) {
	d, err := r.dir("auth")
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "auth.db"), nil
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
	url string
}

func (r *runner) startServer(ctx context.Context, name, db string) (*serverProc, error) {
	p, err := r.start(ctx, name, Spec{Role: RoleServer, DB: db})
	if err != nil {
		return nil, err
	}
	l, err := p.line(ctx)
	if err != nil {
		p.stop()
		return nil, err
	}
	var hello struct {
		Addr string `json:"addr"`
	}
	if err := json.Unmarshal([]byte(l), &hello); err != nil || hello.Addr == "" {
		p.stop()
		return nil, fmt.Errorf("server worker: bad first line %q", l)
	}
	return &serverProc{proc: p, url: "http://" + hello.Addr}, nil
}

// client runs one client worker to completion.
func (r *runner) client(ctx context.Context, name string, spec Spec) (Result, error) {
	d, err := r.dir(spec.Role)
	if err != nil {
		return Result{}, err
	}
	spec.Dir = d
	p, err := r.start(ctx, name, spec)
	if err != nil {
		return Result{}, err
	}
	p.stdin.Close()
	res, err := p.result(ctx)
	os.RemoveAll(d)
	return res, err
}

// withServer runs fn against a server worker over db, stopping it after.
func (r *runner) withServer(ctx context.Context, name, db string, fn func(url string) error) error {
	s, err := r.startServer(ctx, name, db)
	if err != nil {
		return err
	}
	ferr := fn(s.url)
	serr := s.stop()
	if ferr != nil {
		return ferr
	}
	return serr
}

// limits measures the physical limits on the rows of the 100k pull.
func (r *runner) limits(ctx context.Context) error {
	db, err := r.seed(ctx, r.cfg.Sizes.Pull)
	if err != nil {
		return err
	}
	return r.withServer(ctx, ScenarioLimits, db, func(url string) error {
		for range r.cfg.Runs {
			res, err := r.client(ctx, ScenarioLimits, Spec{Role: RoleLimits, URL: url, N: r.cfg.Sizes.Pull})
			if err != nil {
				return err
			}
			r.add(ScenarioLimits, "decode_rps", res.Metrics["decode_rps"])
			r.add(ScenarioLimits, "insert_rps", res.Metrics["insert_rps"])
		}
		return nil
	})
}

func (r *runner) pull(ctx context.Context, name string, n int) error {
	db, err := r.seed(ctx, n)
	if err != nil {
		return err
	}
	return r.withServer(ctx, name, db, func(url string) error {
		for range r.cfg.Runs {
			res, err := r.client(ctx, name, Spec{Role: RolePull, URL: url, N: n})
			if err != nil {
				return err
			}
			r.add(name, "rps", res.Metrics["rps"])
			r.add(name, "rss_mb", res.Metrics["rss_mb"])
		}
		return nil
	})
}

func (r *runner) push(ctx context.Context) error {
	for range r.cfg.Runs {
		db, err := r.freshAuthority()
		if err != nil {
			return err
		}
		err = r.withServer(ctx, ScenarioPush, db, func(url string) error {
			res, err := r.client(ctx, ScenarioPush, Spec{Role: RolePush, URL: url, N: r.cfg.Sizes.Push})
			if err != nil {
				return err
			}
			r.add(ScenarioPush, "ops_s", res.Metrics["ops_s"])
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) incremental(ctx context.Context) error {
	for range r.cfg.Runs {
		db, err := r.copySeed(ctx, r.cfg.Sizes.IncrementalBase)
		if err != nil {
			return err
		}
		err = r.withServer(ctx, ScenarioIncremental, db, func(url string) error {
			res, err := r.client(ctx, ScenarioIncremental, Spec{Role: RoleIncremental, URL: url,
				N: r.cfg.Sizes.IncrementalBase, M: r.cfg.Sizes.IncrementalChanges})
			if err != nil {
				return err
			}
			r.add(ScenarioIncremental, "ms", res.Metrics["ms"])
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) localWrite(ctx context.Context) error {
	db, err := r.freshAuthority()
	if err != nil {
		return err
	}
	return r.withServer(ctx, ScenarioLocalWrite, db, func(url string) error {
		for range r.cfg.Runs {
			res, err := r.client(ctx, ScenarioLocalWrite, Spec{Role: RoleLocalWrite, URL: url, N: r.cfg.Sizes.LocalWrites})
			if err != nil {
				return err
			}
			for _, m := range []string{"writer_rps", "raw_rps", "ratio"} {
				r.add(ScenarioLocalWrite, m, res.Metrics[m])
			}
		}
		return nil
	})
}

func (r *runner) realtime(ctx context.Context) error {
	for range r.cfg.Runs {
		db, err := r.freshAuthority()
		if err != nil {
			return err
		}
		err = r.withServer(ctx, ScenarioRealtime, db, func(url string) error {
			res, err := r.client(ctx, ScenarioRealtime, Spec{Role: RoleRealtime, URL: url, N: r.cfg.Sizes.RealtimeWrites})
			if err != nil {
				return err
			}
			r.add(ScenarioRealtime, "p50_ms", Percentile(res.Samples, 50))
			r.add(ScenarioRealtime, "p99_ms", Percentile(res.Samples, 99))
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// replicas runs the fleet in ReplicaProcesses client processes against one
// server, starting their clocks together once every replica is set up.
func (r *runner) replicas(ctx context.Context) error {
	sz := r.cfg.Sizes
	procs := max(1, min(sz.ReplicaProcesses, sz.Replicas))
	for range r.cfg.Runs {
		db, err := r.freshAuthority()
		if err != nil {
			return err
		}
		err = r.withServer(ctx, ScenarioReplicas, db, func(url string) error {
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
				p, err := r.start(ctx, ScenarioReplicas, Spec{Role: RoleFleet, URL: url, Dir: d, N: n, M: sz.ChangesPerSync,
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
			r.add(ScenarioReplicas, "syncs_s", syncs/secs)
			r.add(ScenarioReplicas, "changes_s", pushed/secs)
			r.add(ScenarioReplicas, "p50_ms", Percentile(samples, 50))
			r.add(ScenarioReplicas, "p99_ms", Percentile(samples, 99))
			r.add(ScenarioReplicas, "errors", errs)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
