package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/internal/testcert"
)

// tlsServer serves every first-party wire form over TLS, in this process,
// and returns its endpoints and the CA file that trusts its certificate.
func tlsServer(t *testing.T) (endpoints map[string]string, caFile string) {
	t.Helper()
	dir := t.TempDir()
	cert := testcert.Write(t, dir)
	cfg, err := config.ParseServer([]byte(`store: {dsn: `+filepath.Join(dir, "auth.db")+`}
server:
  http: "127.0.0.1:0"
  kinds: [conformance]
  tls: {cert: cert.pem, key: key.pem}
  transports: {rest: {}, websocket: {}, graphql: {}, grpc: {}}
`), filepath.Join(dir, "server.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return serveInProcess(t, cfg), cert.CertFile
}

// offsync conformance --ca FILE checks a server whose certificate the
// system does not trust; without --ca the same run is refused.
func TestConformanceCAFile(t *testing.T) {
	endpoints, caFile := tlsServer(t)
	for _, name := range []string{"rest", "websocket", "graphql", "grpc"} {
		url := strings.TrimSuffix(endpoints[name], "/")
		t.Run(name, func(t *testing.T) {
			out, errOut, code := runCLI(t, "conformance", "--transport", name, "--url", url, "--ca", caFile)
			if code != 0 || !strings.Contains(out, "checks passed") {
				t.Fatalf("conformance --ca over %s: exit %d\nstdout:\n%s\nstderr:\n%s", url, code, out, errOut)
			}
			out, errOut, code = runCLI(t, "conformance", "--transport", name, "--url", url)
			if code == 0 || !strings.Contains(out+errOut, "certificate") {
				t.Errorf("conformance without --ca over %s: exit %d\nstdout:\n%s\nstderr:\n%s", url, code, out, errOut)
			}
		})
	}
	_, errOut, code := runCLI(t, "conformance", "--url", strings.TrimSuffix(endpoints["rest"], "/"), "--ca", filepath.Join(t.TempDir(), "none.pem"))
	if code != 2 || !strings.Contains(errOut, "--ca") {
		t.Errorf("a missing --ca file: exit %d, stderr %q", code, errOut)
	}
}
