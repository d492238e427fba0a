package multitest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Failover is a loopback reverse proxy in front of one instance, as a load
// balancer is: replicas talk to it, and after the instance dies it sends
// them to another. Armed, it lets one push through to the instance, waits
// for the instance's answer (the push is committed) and then calls Kill
// (which must kill the instance and Retarget the proxy) and drops the
// answer: the replica never learns whether its push was applied, and must
// send it again.
type Failover struct {
	// URL is the proxy's address, http://HOST:PORT.
	URL string
	// Kill is called once, when an armed push has been answered; it must
	// kill the instance and point the proxy elsewhere.
	Kill func()
	// Killed receives the path of the push whose answer was dropped.
	Killed chan string

	target atomic.Pointer[url.URL]
	armed  atomic.Bool
}

// NewFailover starts a Failover to the instance at base (http://HOST:PORT),
// closed when t ends.
func NewFailover(t testing.TB, base string) *Failover {
	t.Helper()
	f := &Failover{Killed: make(chan string, 1)}
	f.Retarget(t, base)
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(f.target.Load()) },
		Transport:     roundTripper(f.roundTrip),
		FlushInterval: -1, // an event stream passes through unbuffered
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
		// A stream cut by the kill is expected; the client sees it.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Retarget sends the proxy's next requests to base.
func (f *Failover) Retarget(t testing.TB, base string) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	f.target.Store(u)
}

// Arm makes the next POST the one whose answer is dropped.
func (f *Failover) Arm() { f.armed.Store(true) }

type roundTripper func(*http.Request) (*http.Response, error)

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return rt(r) }

func (f *Failover) roundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || r.Method != http.MethodPost || !f.armed.CompareAndSwap(true, false) {
		return resp, err
	}
	// The instance answered: whatever it applied is committed. It dies
	// before the replica reads a byte of the answer.
	resp.Body.Close()
	f.Kill()
	f.Killed <- r.URL.Path
	return nil, errors.New("failover: the instance was killed before it answered")
}

// Balancer is a loopback TCP proxy in front of one listener of an instance.
// Each connection it accepts is joined to a fresh connection to one of its
// current targets, taken in turn; with none (Down) it closes what it
// accepts, as a balancer with no healthy backend does. Since it moves bytes, not requests, every
// wire form passes through it: a client whose instance dies loses its
// connection, reconnects through the balancer and lands on the new target.
type Balancer struct {
	// Addr is where clients connect, 127.0.0.1:PORT.
	Addr string

	ln     net.Listener
	target atomic.Pointer[[]string]
	turn   atomic.Uint64
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// NewBalancer starts a Balancer to target (HOST:PORT), closed when t ends.
func NewBalancer(t testing.TB, target string) *Balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Balancer{Addr: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{}}
	b.Retarget(target)
	b.wg.Go(b.accept)
	t.Cleanup(b.close)
	return b
}

// Retarget sends the connections accepted from now on to targets (HOST:PORT
// each), in turn; those already joined keep their instance.
func (b *Balancer) Retarget(targets ...string) { b.target.Store(&targets) }

// Down makes the balancer refuse connections (accept and close them) until
// the next Retarget.
func (b *Balancer) Down() { b.Retarget() }

func (b *Balancer) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Go(func() { b.join(c) })
	}
}

func (b *Balancer) track(c net.Conn, on bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conns == nil {
		return false
	}
	if on {
		b.conns[c] = struct{}{}
	} else {
		delete(b.conns, c)
	}
	return true
}

func (b *Balancer) join(c net.Conn) {
	defer c.Close()
	targets := *b.target.Load()
	if len(targets) == 0 || !b.track(c, true) {
		return
	}
	to := targets[(b.turn.Add(1)-1)%uint64(len(targets))]
	defer b.track(c, false)
	s, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer s.Close()
	// When either side ends, both are closed: the other copy ends too.
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	<-done
}

func (b *Balancer) close() {
	_ = b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		_ = c.Close()
	}
	b.conns = nil
	b.mu.Unlock()
	b.wg.Wait()
}

// WithAppName returns dsn with its application_name set to name (a URL or
// a keyword/value DSN): the log of InstallAppliedLog records it, so that
// each row version names the instance that wrote it.
func WithAppName(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set("application_name", name)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " application_name=" + name
}

// InstallAppliedLog installs, in the authority's database, a trigger that
// logs every row version written to offsync_documents, with the op marker
// the test puts in each record's field "m" and the application_name of the
// session that wrote it: a marker logged twice is an op applied twice, a
// marker missing an op lost. The authority's tables must exist (an
// instance has started).
func InstallAppliedLog(ctx context.Context, db *sql.DB) error {
	for _, q := range []string{
		`CREATE TABLE applied_log (kind TEXT NOT NULL, id TEXT NOT NULL, marker TEXT, app TEXT)`,
		`CREATE FUNCTION log_applied() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN INSERT INTO applied_log VALUES (NEW.kind, NEW.id, NEW.data->>'m', current_setting('application_name'));
			RETURN NEW; END $$`,
		`CREATE TRIGGER log_applied AFTER INSERT OR UPDATE ON offsync_documents
			FOR EACH ROW EXECUTE FUNCTION log_applied()`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("multitest: %s: %w", q, err)
		}
	}
	return nil
}

// Applied returns, for each op marker in the log of InstallAppliedLog, the
// application_name of the session behind each row version written with it
// (an empty marker stands for a record without one).
func Applied(ctx context.Context, db *sql.DB) (map[string][]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT coalesce(marker, ''), coalesce(app, '') FROM applied_log`)
	if err != nil {
		return nil, fmt.Errorf("multitest: read the applied log: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var m, app string
		if err := rows.Scan(&m, &app); err != nil {
			return nil, fmt.Errorf("multitest: read the applied log: %w", err)
		}
		out[m] = append(out[m], app)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("multitest: read the applied log: %w", err)
	}
	return out, nil
}

// Counts is how many row versions were written with each marker of a.
func Counts(a map[string][]string) map[string]int {
	out := make(map[string]int, len(a))
	for m, apps := range a {
		out[m] = len(apps)
	}
	return out
}

// Check compares an applied log with the markers of the acknowledged ops:
// one error per marker applied twice or more, lost (never applied) or
// written without any op carrying it.
func Check(applied map[string][]string, want map[string]bool) []error {
	var errs []error
	for m, apps := range applied {
		if !want[m] {
			errs = append(errs, fmt.Errorf("the authority wrote a row with marker %q that no op carried", m))
		} else if len(apps) != 1 {
			errs = append(errs, fmt.Errorf("op %q applied %d times (by %v)", m, len(apps), apps))
		}
	}
	for m := range want {
		if len(applied[m]) == 0 {
			errs = append(errs, fmt.Errorf("op %q lost: the authority never applied it", m))
		}
	}
	return errs
}
