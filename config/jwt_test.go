package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/config"
	_ "github.com/offsync/offsync/drivers/store/sqlite"
)

// server.jwt and server.rate_limit: decoded with ${ENV} secrets, checked
// with errors that name the key and its line.
func TestJWTAndRateLimitConfig(t *testing.T) {
	t.Setenv("OFFSYNC_TEST_JWT_SECRET", strings.Repeat("s", 32))
	load := func(extra string) (*config.Server, error) {
		p := filepath.Join(t.TempDir(), "server.yaml")
		body := "store:\n  driver: sqlite\n  dsn: a.db\nserver:\n  kinds: [note]\n" + extra
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return config.LoadServer(p)
	}
	cfg, err := load(`  jwt:
    hs256_secret: ${OFFSYNC_TEST_JWT_SECRET}
    issuer: https://issuer.test
    audience: offsync
    leeway: 30s
    principal_claim: uid
    attrs: {role: roles}
  rate_limit: {per_second: 20}
  scope: {field: owner}
`)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := cfg.JWTOptions()
	if !ok || string(o.HS256Secret) != strings.Repeat("s", 32) || o.Issuer != "https://issuer.test" ||
		o.Audience != "offsync" || o.Leeway != 30*time.Second || o.PrincipalClaim != "uid" || o.Attrs["role"] != "roles" {
		t.Fatalf("JWTOptions = %+v", o)
	}
	if l, ok := cfg.RateLimitOptions(); !ok || l.PerSecond != 20 || l.Burst != 20 {
		t.Fatalf("RateLimitOptions = %+v (burst defaults to per_second)", l)
	}
	cfg, err = load("  jwt: {jwks_file: keys/jwks.json}\n")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := cfg.JWTOptions(); o.JWKSFile != filepath.Join(cfg.Dir(), "keys/jwks.json") {
		t.Fatalf("jwks_file %q is not resolved against the config's directory", o.JWKSFile)
	}
	for _, tc := range []struct{ extra, line, want string }{
		{"  jwt: {issuer: x}\n", "server.yaml:6:", "server.jwt: "},
		{"  jwt:\n    jwks_file: a.json\n    jwks_url: https://idp.test/jwks\n", "server.yaml:8:", "server.jwt.jwks_url: "},
		{"  jwt:\n    jwks_url: ftp://idp.test/jwks\n", "server.yaml:7:", "server.jwt.jwks_url: "},
		{"  jwt:\n    hs256_secret: short\n", "server.yaml:7:", "server.jwt.hs256_secret: "},
		{"  jwt:\n    jwks_url: https://idp.test/jwks\n    leeway: -1s\n", "server.yaml:8:", "server.jwt.leeway: "},
		{"  jwt:\n    jwks_url: https://idp.test/jwks\n    attrs:\n      offsync.expires_at: exp\n", "server.yaml:9:", "server.jwt.attrs.offsync.expires_at: "},
		{"  jwt:\n    jwks_url: https://idp.test/jwks\n    principal_claim: exp\n", "server.yaml:8:", "server.jwt.principal_claim: "},
		{"  jwt:\n    jwks_url: https://idp.test/jwks\n    algorithm: none\n", "server.yaml:8:", "algorithm"},
		{"  rate_limit:\n    burst: 5\n", "server.yaml:", "server.rate_limit.per_second: "},
		{"  rate_limit:\n    per_second: 5\n", "server.yaml:6:", "server.rate_limit: "},
		{"  rate_limit:\n    per_second: 1.5\n", "server.yaml:7:", "server.rate_limit.per_second: "},
		{"  rate_limit:\n    per_second: 5\n    burst: -1\n", "server.yaml:8:", "server.rate_limit.burst: "},
	} {
		_, err := load(tc.extra)
		if err == nil || !strings.Contains(err.Error(), tc.line) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q at %q", tc.extra, err, tc.want, tc.line)
		}
	}
}
