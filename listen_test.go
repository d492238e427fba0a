package offsync_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/internal/testcert"
)

// restOnly serves the REST form alone with the given extra server keys.
func restOnly(t *testing.T, dir, extra string) string {
	t.Helper()
	ep := serveWith(t, dir, `store: {dsn: `+filepath.Join(dir, "server.db")+`}
server:
  http: 127.0.0.1:0
  kinds: [note]
  transports: {rest: {}}
`+extra)
	return ep["rest"]
}

// waitClosed reads from c until the server closes it; it fails the test if
// the server has not closed it within limit (a bound for a stuck test, not a
// measurement).
func waitClosed(t *testing.T, c net.Conn, limit time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open")
	}
}

// A client that never finishes its headers, and an idle keep-alive
// connection, are closed by the server.
func TestListenerClosesSlowAndIdleConnections(t *testing.T) {
	url := restOnly(t, t.TempDir(), "  read_header_timeout: 200ms\n  idle_timeout: 200ms\n")
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /health HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, slow, 30*time.Second)

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := io.WriteString(idle, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("health on the idle connection: %v %v", resp, err)
	}
	resp.Body.Close()
	waitClosed(t, idle, 30*time.Second)
}

// With max_conns 1, a second connection is not served while the first is
// open, and is served once it closes.
func TestListenerConnectionCap(t *testing.T) {
	url := restOnly(t, t.TempDir(), "  max_conns: 1\n")
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/")
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(first, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(first)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: %v %v", resp, err)
	}
	second, err := net.Dial("tcp", addr) // the kernel queues it; the server does not take it
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if _, err := io.WriteString(second, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := http.ReadResponse(bufio.NewReader(second), nil); err == nil {
		t.Fatal("a connection over the cap was served")
	}
	first.Close()
	_ = second.SetReadDeadline(time.Now().Add(30 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(second), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the queued connection after the first closed: %v %v", resp, err)
	}
}

// The write timeout bounds answers, not streams: an event stream outlives
// it and still carries a notice.
func TestListenerWriteTimeoutSparesStreams(t *testing.T) {
	url := strings.TrimSuffix(restOnly(t, t.TempDir(), "  write_timeout: 100ms\n"), "/")
	req, _ := http.NewRequest(http.MethodGet, url+"/events?kinds=note", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	time.Sleep(400 * time.Millisecond) // well past the write timeout
	put, _ := http.NewRequest(http.MethodPut, url+"/note/n1", strings.NewReader(`{"title":"x"}`))
	if r, err := http.DefaultClient.Do(put); err != nil || r.StatusCode != 200 {
		t.Fatalf("PUT: %v %v", r, err)
	}
	for line := range lines {
		if strings.HasPrefix(line, "data:") && strings.Contains(line, `"note"`) {
			return
		}
	}
	t.Fatal("the stream ended without the notice")
}

// writeCert writes a self-signed certificate for 127.0.0.1 (cert.pem,
// key.pem) into dir and returns the pool that trusts it.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	return testcert.Write(t, dir).Pool
}

// With server.tls every HTTP form is served over TLS (paths relative to the
// config file), and a replica that trusts the CA syncs through it.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	pool := writeCert(t, dir)
	url := strings.TrimSuffix(restOnly(t, dir, "  tls: {cert: cert.pem, key: key.pem}\n"), "/")
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("endpoint %s", url)
	}
	if _, err := http.Get(strings.Replace(url, "https://", "http://", 1) + "/health"); err == nil {
		// Go's server answers plain HTTP on a TLS port with a 400; either way no /health.
		resp, _ := http.Get(strings.Replace(url, "https://", "http://", 1) + "/health")
		if resp != nil && resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP served /health on the TLS listener")
		}
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	ctx := context.Background()
	st, err := core.OpenStore(ctx, "sqlite", filepath.Join(dir, "replica.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := core.NewEngine(ctx, st, rest.NewClient(url, &rest.Options{HTTPClient: hc}),
		&core.Options{Tables: []core.Table{core.Documents("note")}, Closers: nil})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { eng.Close(); st.Close() }()
	notes, _ := eng.Table("note")
	if err := core.DocsFor(eng, notes.(*core.DocumentTable)).Put(ctx, "n1", map[string]any{"title": "over TLS"}); err != nil {
		t.Fatal(err)
	}
	if s, err := eng.Sync(ctx); err != nil || s.Pushed != 1 {
		t.Fatalf("sync over TLS: %+v %v", s, err)
	}
	// A client that does not trust the certificate gets nothing.
	if _, err := http.Get(url + "/health"); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

// The config form logs the same warning as the flag form when
// authentication is off.
func TestServeWarnsWhenAuthenticationIsOff(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.ParseServer([]byte("store: {dsn: "+filepath.Join(dir, "s.db")+"}\nserver: {http: '127.0.0.1:0', kinds: [note]}\n"), filepath.Join(dir, "s.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- offsync.ServeWith(ctx, cfg, &offsync.ServeOptions{
			Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Ready:  func(map[string]string) { close(ready) },
		})
	}()
	<-ready
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "authentication off") {
		t.Fatalf("no warning:\n%s", logs.String())
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
