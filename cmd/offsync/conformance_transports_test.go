package main

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
)

// servedTransports reads the wire forms a running server lists in GET
// /health ("transports": name → a path on its HTTP listener, or an address).
func servedTransports(t *testing.T, p *serveProcess) map[string]string {
	t.Helper()
	resp, err := http.Get(p.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Transports map[string]string `json:"transports"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health: %d %v", resp.StatusCode, err)
	}
	if len(h.Transports) == 0 {
		t.Fatalf("GET /health lists no transports")
	}
	return h.Transports
}

// transportURL is the URL the client of a served wire form takes: where is
// the /health entry, a path on the HTTP listener at addr or an address of
// its own.
func transportURL(t *testing.T, name, addr, where string) string {
	t.Helper()
	onHTTP := strings.HasPrefix(where, "/")
	switch {
	case name == "rest" && onHTTP:
		return "http://" + addr + strings.TrimSuffix(where, "/")
	case name == "websocket" && onHTTP:
		return "ws://" + addr + where
	case name == "graphql" && onHTTP:
		return "http://" + addr + where
	case name == "grpc" && !onHTTP:
		return "grpc://" + where
	}
	t.Fatalf("no URL form for transport %q served at %q: add it to this table", name, where)
	return ""
}

// TestConformanceOverEveryTransport checks `offsync serve` over every wire
// form it serves, each through its registered client.
func TestConformanceOverEveryTransport(t *testing.T) {
	tokens := writeTokens(t, "one alice\ntwo bob\n")
	p := startServe(t, "--kind", "conformance", "--tokens", tokens, "--scope", "conformance=owner")
	served := servedTransports(t, p)
	names := make([]string, 0, len(served))
	for name := range served {
		names = append(names, name)
	}
	sort.Strings(names)
	t.Logf("served: %v", served)
	// The binary is this test's package: its client transports are ours.
	for _, name := range core.TransportDrivers() {
		if _, ok := served[name]; !ok {
			t.Errorf("the client transport %q is registered but offsync serve does not serve it by default (health lists %v)", name, served)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			url := transportURL(t, name, p.Addr, served[name])
			out, errOut, code := runCLI(t, "conformance", "--transport", name, "--url", url, "--token", "one", "--token2", "two")
			if code != 0 {
				t.Fatalf("offsync conformance --transport %s --url %s: exit %d\nstdout:\n%s\nstderr:\n%s", name, url, code, out, errOut)
			}
			if strings.Contains(out, "FAIL") {
				t.Errorf("a check failed:\n%s", out)
			}
			t.Logf("%s", out)
			// Over the client every check runs; the upgrades the client
			// lacks are the only SKIPs.
			for _, check := range []string{"create", "idempotent-replay", "conflict-on-stale-base",
				"forced-retry-after-conflict", "keyset-paging-with-writes", "tombstones", "scope-invisibility",
				"unknown-kind", "bad-page-token"} {
				if !strings.Contains(out, "PASS "+name+"/"+check+": ") {
					t.Errorf("no PASS line for %s/%s:\n%s", name, check, out)
				}
			}
			if name == "rest" && (strings.Contains(out, "SKIP") || !strings.Contains(out, "PASS too-large-413: ")) {
				t.Errorf("rest runs the raw-HTTP checks too, and its client has every upgrade:\n%s", out)
			}
		})
	}
}

func TestConformanceUnknownTransport(t *testing.T) {
	out, errOut, code := runCLI(t, "conformance", "--transport", "carrier-pigeon", "--url", "http://127.0.0.1:1")
	if code != 2 {
		t.Errorf("exit %d, want 2 (usage)", code)
	}
	if !strings.Contains(errOut, `"carrier-pigeon": unknown transport (known: `) || !strings.Contains(errOut, "rest") {
		t.Errorf("stderr %q does not list the known transports", errOut)
	}
	if out != "" {
		t.Errorf("a usage error ran checks:\n%s", out)
	}
}

func TestConformanceBadURLForTransport(t *testing.T) {
	// The rest client takes http(s) only: a malformed URL is a usage error,
	// before any check runs.
	if _, errOut, code := runCLI(t, "conformance", "--transport", "rest", "--url", "ws://127.0.0.1:1/ws"); code != 2 {
		t.Errorf("exit %d, want 2 (stderr %q)", code, errOut)
	}
}
