package main

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/conformance/contract/defects"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

func TestConformancePassesAgainstServe(t *testing.T) {
	tokens := writeTokens(t, "one alice\ntwo bob\n")
	p := startServe(t, "--kind", "conformance", "--tokens", tokens, "--scope", "conformance=owner")
	out, errOut, code := runCLI(t, "conformance", "--transport", "rest", "--url", p.URL, "--token", "one", "--token2", "two")
	if code != 0 {
		t.Fatalf("exit %d against offsync serve\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Contains(out, "FAIL") || strings.Contains(out, "SKIP") || strings.Count(out, "PASS ") < 20 {
		t.Errorf("want every check to pass:\n%s", out)
	}
}

func TestConformanceSkipsScopeWithoutSecondToken(t *testing.T) {
	p := startServe(t, "--kind", "conformance")
	out, _, code := runCLI(t, "conformance", "--url", p.URL)
	if code != 0 || !strings.Contains(out, "SKIP scope-invisibility: no second token") {
		t.Errorf("exit %d, want 0 with a SKIP line for scope:\n%s", code, out)
	}
}

// defectiveHalf is the REST server half seen through a defect: a server
// half of the test's own, registered by name and composed by offsync.Serve
// like any other, so the checker meets a whole (broken) server.
type defectiveHalf struct {
	server.HTTPTransport
	h http.Handler
}

func (d defectiveHalf) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.h.ServeHTTP(w, r) }

var defectsByName = map[string]func(http.Handler) http.Handler{
	"defect_offset_tokens": defects.OffsetTokens,
	"defect_second_times":  defects.SecondTimestamps,
	"defect_caching_409":   defects.Caching409,
}

func init() {
	for name, defect := range defectsByName {
		server.RegisterTransport(name, server.TransportDriver{Path: "/", Rank: 100,
			Open: func(ctx context.Context, t core.Transport, cfg server.TransportConfig) (server.TransportServer, error) {
				ts, err := server.OpenServer(ctx, "rest", t, server.TransportConfig{Limits: cfg.Limits, Served: cfg.Served, Logger: cfg.Logger})
				if err != nil {
					return nil, err
				}
				h := ts.(server.HTTPTransport)
				return defectiveHalf{HTTPTransport: h, h: defect(h)}, nil
			}})
	}
}

// defectiveServer serves the reference authority through the defect
// registered as name, in this process, and returns its URL.
func defectiveServer(t *testing.T, name string) string {
	dir := t.TempDir()
	cfg, err := config.ParseServer([]byte(`store: {dsn: `+filepath.Join(dir, "auth.db")+`}
server: {http: "127.0.0.1:0", kinds: [conformance], transports: {`+name+`: {}}}
`), filepath.Join(dir, "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(serveInProcess(t, cfg)[name], "/")
}

// serveInProcess runs offsync.ServeWith on cfg in this process until the
// test ends and returns its endpoints once it listens.
func serveInProcess(t *testing.T, cfg *config.Server) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan map[string]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- offsync.ServeWith(ctx, cfg, &offsync.ServeOptions{
			Logger: slog.New(slog.DiscardHandler),
			Ready:  func(e map[string]string) { ready <- e },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case e := <-ready:
		return e
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	return nil
}

func TestConformanceFailsAgainstDefectiveServers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		defect string
		line   string
	}{
		{"offset page tokens", "defect_offset_tokens", "FAIL keyset-paging-with-writes: rows"},
		{"timestamps truncated to seconds", "defect_second_times", "FAIL microsecond-timestamps: updated_at"},
		{"409 cached under the idempotency key", "defect_caching_409", "FAIL forced-retry-after-409: the forced retry of a conflicted op answered 409 again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, "conformance", "--url", defectiveServer(t, tc.defect))
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(out, tc.line) {
				t.Errorf("no line %q in:\n%s", tc.line, out)
			}
			if !strings.Contains(errOut, "checks failed") {
				t.Errorf("stderr %q does not say checks failed", errOut)
			}
		})
	}
}

func TestConformanceUsage(t *testing.T) {
	for _, args := range [][]string{
		{"conformance"},
		{"conformance", "--url", "http://127.0.0.1:1", "--transport", "carrier-pigeon"},
		{"conformance", "--url", "not a url"},
	} {
		if _, errOut, code := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errOut)
		}
	}
}
