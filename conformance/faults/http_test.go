package faults_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/faults"
	"github.com/offsync/offsync/core"
)

// echoServer is a real HTTP server on 127.0.0.1 that records the bodies it
// receives and answers with a fixed body.
type echoServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

const answer = `{"results":[{"opId":"op-a","status":"applied"}],"padding":"0123456789"}`

func newEchoServer(t *testing.T) *echoServer {
	s := &echoServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *echoServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bodies)
}

func httpClient(t *testing.T, s *echoServer, opts faults.Options) (*http.Client, *faults.Injector) {
	inj := newInjector(t, opts)
	return &http.Client{Transport: faults.WrapHTTP(s.Client().Transport, inj)}, inj
}

func post(t *testing.T, c *http.Client, url, body string) (string, error) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/batch", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestHTTPDropRequest(t *testing.T) {
	s := newEchoServer(t)
	c, inj := httpClient(t, s, faults.Options{Rules: []faults.Rule{{Fault: faults.DropRequest, Method: faults.HTTP, Nth: 1}}})
	if _, err := post(t, c, s.URL, "one"); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if got, err := post(t, c, s.URL, "two"); err != nil || got != answer {
		t.Fatalf("second request: %q, %v", got, err)
	}
	if got := s.received(); !slices.Equal(got, []string{"two"}) {
		t.Fatalf("server received %q", got)
	}
	if st := inj.Stats(); st.Injected[faults.DropRequest] != 1 || st.Calls[faults.HTTP] != 2 {
		t.Fatalf("stats %v", st)
	}
}

func TestHTTPDropAnswer(t *testing.T) {
	s := newEchoServer(t)
	c, inj := httpClient(t, s, faults.Options{Rules: []faults.Rule{{Fault: faults.DropAnswer,
		Match: func(c faults.Call) bool { return c.Request.URL.Path == "/batch" }}}})
	if _, err := post(t, c, s.URL, "one"); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if got := s.received(); !slices.Equal(got, []string{"one"}) {
		t.Fatalf("server received %q, want the request", got)
	}
	// Another path is not selected by the predicate.
	resp, err := c.Get(s.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if st := inj.Stats(); st.Injected[faults.DropAnswer] != 1 {
		t.Fatalf("stats %v", st)
	}
}

func TestHTTPDuplicate(t *testing.T) {
	s := newEchoServer(t)
	c, inj := httpClient(t, s, faults.Options{Rules: []faults.Rule{{Fault: faults.Duplicate, Times: 1}}})
	got, err := post(t, c, s.URL, "payload")
	if err != nil || got != answer {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := post(t, c, s.URL, "next"); err != nil {
		t.Fatal(err)
	}
	if got := s.received(); !slices.Equal(got, []string{"payload", "payload", "next"}) {
		t.Fatalf("server received %q", got)
	}
	if st := inj.Stats(); st.Injected[faults.Duplicate] != 1 {
		t.Fatalf("stats %v", st)
	}
}

func TestHTTPDelay(t *testing.T) {
	s := newEchoServer(t)
	release := make(chan struct{})
	decided := make(chan struct{}, 1)
	c, inj := httpClient(t, s, faults.Options{Rules: []faults.Rule{{Fault: faults.Delay, Release: release,
		Match: func(faults.Call) bool { decided <- struct{}{}; return true }}}})
	done := make(chan error, 1)
	go func() {
		_, err := post(t, c, s.URL, "held")
		done <- err
	}()
	<-decided
	if n := len(s.received()); n != 0 {
		t.Fatalf("a held request reached the server")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := s.received(); !slices.Equal(got, []string{"held"}) || inj.Stats().Injected[faults.Delay] != 1 {
		t.Fatalf("server received %q; stats %v", got, inj.Stats())
	}
}

func TestHTTPCutBody(t *testing.T) {
	s := newEchoServer(t)
	c, inj := httpClient(t, s, faults.Options{Rules: []faults.Rule{{Fault: faults.CutBody, Keep: 10, Times: 1}}})
	got, err := post(t, c, s.URL, "x")
	if !errors.Is(err, io.ErrUnexpectedEOF) || got != answer[:10] {
		t.Fatalf("got %q, %v; want the first 10 bytes and io.ErrUnexpectedEOF", got, err)
	}
	if st := inj.Stats(); st.Injected[faults.CutBody] != 1 {
		t.Fatalf("stats %v", st)
	}

	// A body no longer than Keep is delivered whole.
	c, inj = httpClient(t, s, faults.Options{Rules: []faults.Rule{{Fault: faults.CutBody, Keep: len(answer)}}})
	if got, err := post(t, c, s.URL, "x"); err != nil || got != answer {
		t.Fatalf("got %q, %v", got, err)
	}
	if st := inj.Stats(); st.Total() != 0 {
		t.Fatalf("stats %v", st)
	}

	// A random cut keeps fewer bytes than the body, the same for a seed.
	cut := func(seed uint64) string {
		c, _ := httpClient(t, s, faults.Options{Seed: seed, Rules: []faults.Rule{{Fault: faults.CutBody, Keep: -1}}})
		got, err := post(t, c, s.URL, "x")
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) >= len(answer) {
			t.Fatalf("seed %d: %q, %v", seed, got, err)
		}
		return got
	}
	if cut(5) != cut(5) {
		t.Fatal("a random cut is not determined by the seed")
	}
}

func TestHTTPCheckpoints(t *testing.T) {
	s := newEchoServer(t)
	var mu sync.Mutex
	var points []string
	c, _ := httpClient(t, s, faults.Options{Checkpoint: func(p string) {
		mu.Lock()
		points = append(points, p)
		mu.Unlock()
	}})
	if _, err := post(t, c, s.URL, "w"); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(s.URL + "/todo")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if want := []string{faults.AfterRequestSent, faults.AfterAuthorityCommit}; !slices.Equal(points, want) {
		t.Fatalf("points %v, want %v (a GET hits none)", points, want)
	}
}

// upgradeServer answers every request with 101 and hands the connection
// over, as a WebSocket server does: it writes greeting, then holds the
// connection open, echoing what it reads, until the test ends.
func upgradeServer(t *testing.T, greeting string) *httptest.Server {
	done := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = io.WriteString(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n"+greeting)
		_ = rw.Flush()
		go func() { _, _ = io.Copy(conn, rw) }()
		<-done
	}))
	t.Cleanup(func() { close(done); s.Close() })
	return s
}

func upgrade(t *testing.T, c *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "test")
	return c.Do(req)
}

// A dropped 101 answer is closed, not read to its end: the connection it
// hands over ends only when its server closes it, which this one does at
// the end of the test, after the drop must have returned.
func TestHTTPDropAnswerOfAnUpgrade(t *testing.T) {
	s := upgradeServer(t, "hello")
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.DropAnswer, Method: faults.HTTP, Nth: 1}}})
	c := &http.Client{Transport: faults.WrapHTTP(s.Client().Transport, inj)}
	returned := make(chan error, 1)
	go func() {
		_, err := upgrade(t, c, s.URL)
		returned <- err
	}()
	select {
	case err := <-returned:
		if !errors.Is(err, core.ErrUnavailable) {
			t.Fatalf("dropped answer: %v", err)
		}
	case <-time.After(10 * time.Second): // a deadlock guard, not a speed bound
		t.Fatal("the drop waited for the upgraded connection to end")
	}
}

// A cut 101 answer is still a connection its client can write to; what it
// reads is cut after Keep bytes.
func TestHTTPCutBodyOfAnUpgrade(t *testing.T) {
	s := upgradeServer(t, "0123456789")
	inj := newInjector(t, faults.Options{Rules: []faults.Rule{{Fault: faults.CutBody, Keep: 14, Times: 1}}})
	c := &http.Client{Transport: faults.WrapHTTP(s.Client().Transport, inj)}
	resp, err := upgrade(t, c, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("the cut answer's body %T is not a connection", resp.Body)
	}
	if _, err := io.WriteString(rw, "echo"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.LimitReader(rw, 64))
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(got) != "0123456789echo" {
		t.Fatalf("read %q, %v; want the greeting and the echo, then io.ErrUnexpectedEOF", got, err)
	}
	if st := inj.Stats(); st.Injected[faults.CutBody] != 1 {
		t.Fatalf("stats %v", st)
	}
}
