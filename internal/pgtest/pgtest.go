package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable that points pgtest at an existing
// server: New then creates its databases there (the role must be allowed to
// create databases) and starts no cluster.
const EnvDSN = "OFFSYNC_POSTGRES_DSN"

// serverSettings are passed to every cluster: a test server needs no
// durability, and loses nothing but speed to the defaults otherwise.
var serverSettings = []string{
	"-c", "listen_addresses=127.0.0.1",
	"-c", "fsync=off",
	"-c", "synchronous_commit=off",
	"-c", "full_page_writes=off",
	"-c", "max_connections=200",
	"-c", "shared_buffers=32MB",
}

// adminTimeout bounds every administrative step (start, stop, create and
// drop database); it is a guard against a hung server, not a measure.
const adminTimeout = 2 * time.Minute

// env is what the process found about PostgreSQL, computed once.
type env struct {
	bin     string // directory of initdb, pg_ctl, postgres
	asRoot  bool   // run the binaries through runuser as user postgres
	uid     int
	gid     int
	runuser string
}

var findEnv = sync.OnceValues(func() (*env, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	e := &env{bin: bin, uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		e.asRoot = true
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs a user \"postgres\" to run the server as: %v", err)
		}
		if e.uid, err = strconv.Atoi(u.Uid); err != nil {
			return nil, fmt.Errorf("pgtest: user postgres has uid %q", u.Uid)
		}
		if e.gid, err = strconv.Atoi(u.Gid); err != nil {
			return nil, fmt.Errorf("pgtest: user postgres has gid %q", u.Gid)
		}
		if e.runuser, err = exec.LookPath("runuser"); err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs runuser (util-linux): %v", err)
		}
	}
	return e, nil
})

// findBin returns the newest /usr/lib/postgresql/*/bin holding the server
// binaries, or the directory of initdb on PATH.
func findBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	type cand struct {
		dir string
		ver float64
	}
	var cands []cand
	for _, d := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err != nil || !hasServer(d) {
			continue
		}
		cands = append(cands, cand{d, v})
	}
	if len(cands) > 0 {
		sort.Slice(cands, func(i, j int) bool { return cands[i].ver > cands[j].ver })
		return cands[0].dir, nil
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", errors.New("pgtest: no PostgreSQL server binaries: none in /usr/lib/postgresql/*/bin and no initdb on PATH " +
			"(install them, e.g. apt-get install postgresql, or set " + EnvDSN + ")")
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	d := filepath.Dir(p)
	if !hasServer(d) {
		return "", fmt.Errorf("pgtest: %s has initdb but not pg_ctl and postgres", d)
	}
	return d, nil
}

func hasServer(dir string) bool {
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// Available reports why New cannot give a database, or nil when it can:
// OFFSYNC_POSTGRES_DSN is set or the server binaries were found.
func Available() error {
	if os.Getenv(EnvDSN) != "" {
		return nil
	}
	_, err := findEnv()
	return err
}

// require stops the test when PostgreSQL is not available: a loud skip, or
// a failure when CI=true, since CI must run every Postgres test.
func require(t testing.TB) *env {
	t.Helper()
	e, err := findEnv()
	if err == nil {
		return e
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("pgtest: PostgreSQL is required when CI=true: %v", err)
	}
	t.Skipf("pgtest: SKIPPING, PostgreSQL IS NOT AVAILABLE: %v", err)
	return nil
}

// command builds a command running a PostgreSQL binary, as user postgres
// when the process runs as root.
func (e *env) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	bin := filepath.Join(e.bin, name)
	if e.asRoot {
		return exec.CommandContext(ctx, e.runuser, append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	return exec.CommandContext(ctx, bin, args...)
}

func (e *env) run(ctx context.Context, name string, args ...string) error {
	cmd := e.command(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// chown gives path to user postgres when running as root.
func (e *env) chown(path string) error {
	if !e.asRoot {
		return nil
	}
	return os.Lchown(path, e.uid, e.gid)
}

// proc is the per-process state: a root directory holding the template and
// every cluster, and the watchdog that cleans it when the process ends.
type proc struct {
	env      *env
	root     string
	template string   // data directory made by initdb
	watchdog *os.File // write end of the watchdog's stdin; kept open for the process's life
	seq      atomic.Int64
}

var procState = sync.OnceValues(func() (*proc, error) {
	e, err := findEnv()
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp("", "offsync-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	p := &proc{env: e, root: root, template: filepath.Join(root, "template")}
	if err := e.chown(root); err != nil {
		os.RemoveAll(root)
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := p.startWatchdog(); err != nil {
		os.RemoveAll(root)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	if err := e.run(ctx, "initdb", "-D", p.template, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N"); err != nil {
		return nil, err
	}
	return p, nil
})

// watchdogScript waits for its stdin to close (the test process ended, in
// whatever way), then stops every cluster left under the root directory and
// removes it. Clusters are normally stopped by t.Cleanup long before.
const watchdogScript = `read _
for f in "$1"/*/data/postmaster.pid; do
	[ -f "$f" ] && kill -QUIT "$(head -n 1 "$f")" 2>/dev/null
done
for f in "$1"/*/data/postmaster.pid; do
	pid=$(head -n 1 "$f" 2>/dev/null) || continue
	while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
done
rm -rf "$1"
`

func (p *proc) startWatchdog() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pgtest: watchdog: %w", err)
	}
	cmd := exec.Command("/bin/sh", "-c", watchdogScript, "pgtest-watchdog", p.root)
	cmd.Stdin = r // an *os.File: no copying goroutine
	// Its own process group, so that an interrupt of the test run does
	// not kill it before it has cleaned up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("pgtest: watchdog: %w", err)
	}
	r.Close()
	p.watchdog = w
	return nil
}

// Cluster is a running PostgreSQL server of its own data directory.
type Cluster struct {
	p    *proc
	dir  string
	data string
	port int

	mu      sync.Mutex // one administrative statement at a time
	stop    sync.Once
	stopped atomic.Bool
	err     error
}

// Dir returns the cluster's directory (data directory, socket and log).
func (c *Cluster) Dir() string { return c.dir }

// Port returns the TCP port the server listens on at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// DSN returns the URL of database db on the cluster, as user postgres.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, url.PathEscape(db))
}

// NewCluster starts a cluster for t alone, stopped and removed when t ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	if require(t) == nil {
		return nil
	}
	p, err := procState()
	if err != nil {
		t.Fatalf("%v", err)
	}
	c, err := p.start(nil)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return c
}

var sharedCluster = sync.OnceValues(func() (*Cluster, error) {
	p, err := procState()
	if err != nil {
		return nil, err
	}
	return p.start(nil)
})

// start starts a cluster from the template with serverSettings, then
// settings (pairs of "-c", "name=value"; later ones win).
func (p *proc) start(settings []string) (*Cluster, error) {
	dir := filepath.Join(p.root, fmt.Sprintf("c%d", p.seq.Add(1)))
	c := &Cluster{p: p, dir: dir, data: filepath.Join(dir, "data")}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := p.env.chown(dir); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := copyTree(p.env, p.template, c.data); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	var err error
	for range 5 { // a port taken between probe and bind is tried again
		if c.port, err = freePort(); err != nil {
			break
		}
		opts := append(append([]string{"-p", strconv.Itoa(c.port), "-k", dir}, serverSettings...), settings...)
		err = p.env.run(ctx, "pg_ctl", "-D", c.data, "-l", filepath.Join(dir, "log"), "-w", "-t", "120",
			"-o", strings.Join(opts, " "), "start")
		if err == nil {
			return c, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		err = fmt.Errorf("%w\nserver log:\n%s", err, log)
		if !strings.Contains(string(log), "already in use") {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// copyTree copies the template data directory to dst, owned by postgres.
func copyTree(e *env, src, dst string) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(to, info.Mode().Perm()); err != nil {
				return err
			}
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
		default:
			if err := copyFile(path, to, info.Mode().Perm()); err != nil {
				return err
			}
		}
		return e.chown(to)
	})
	if err != nil {
		return fmt.Errorf("pgtest: copy template: %w", err)
	}
	return nil
}

func copyFile(from, to string, perm fs.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Stop stops the server at once (pg_ctl -m immediate) and removes its
// directory. It is safe to call more than once; NewCluster calls it in
// t.Cleanup.
func (c *Cluster) Stop() error {
	c.stop.Do(func() {
		c.stopped.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		err := c.p.env.run(ctx, "pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop")
		if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
			err = fmt.Errorf("pgtest: remove %s: %w", c.dir, rmErr)
		}
		c.err = err
	})
	return c.err
}

// NewDB creates a fresh database on the cluster, dropped when t ends, and
// returns its DSN.
func (c *Cluster) NewDB(t testing.TB) string {
	t.Helper()
	name := dbName()
	if err := c.exec(fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0", name)); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		if c.stopped.Load() {
			return // the whole cluster is gone
		}
		if err := c.exec(fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.DSN(name)
}

func (c *Cluster) exec(sql string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return adminExec(c.DSN("postgres"), sql)
}

// adminExec runs one statement on a connection of its own, closed before
// it returns. An administrative connection kept open between tests
// outlives them: a write that pgx finds slow starts a background reader on
// it, which then waits on the idle socket until the test binary ends, and
// goleak (in TestMain) reports it as a leaked goroutine.
func adminExec(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, sql)
	if cerr := conn.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

var dbSeq atomic.Int64

// dbName is unique across processes sharing one server.
func dbName() string {
	return fmt.Sprintf("offsync_t%d_%d", os.Getpid(), dbSeq.Add(1))
}

// New returns the DSN of a fresh, empty database, dropped when t ends. The
// database is on the server named by OFFSYNC_POSTGRES_DSN when it is set, and
// otherwise on a cluster shared by the test binary, started on first use.
func New(t testing.TB) string {
	t.Helper()
	if base := os.Getenv(EnvDSN); base != "" {
		return newExternal(t, base)
	}
	if require(t) == nil {
		return ""
	}
	c, err := sharedCluster()
	if err != nil {
		t.Fatalf("%v", err)
	}
	return c.NewDB(t)
}

var externalMu sync.Mutex // one administrative statement at a time

func newExternal(t testing.TB, base string) string {
	t.Helper()
	name := dbName()
	if err := externalExec(base, fmt.Sprintf("CREATE DATABASE %s TEMPLATE template0", name)); err != nil {
		t.Fatalf("pgtest: create database on %s: %v", EnvDSN, err)
	}
	t.Cleanup(func() {
		err := externalExec(base, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
		if err != nil { // before PostgreSQL 13
			err = externalExec(base, fmt.Sprintf("DROP DATABASE IF EXISTS %s", name))
		}
		if err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(base, name)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return dsn
}

func externalExec(base, sql string) error {
	externalMu.Lock()
	defer externalMu.Unlock()
	return adminExec(base, sql)
}

// withDatabase returns dsn (a URL or keyword/value string) naming db.
func withDatabase(dsn, db string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("pgtest: %s is not a valid URL: %v", EnvDSN, err)
		}
		u.Path = "/" + db
		u.RawPath = ""
		return u.String(), nil
	}
	return dsn + " dbname=" + db, nil
}
