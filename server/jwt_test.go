package server_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/jwttest"
	"github.com/offsync/offsync/server"
)

// testClock is a settable clock for the authenticator.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var jwtEpoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func claims(now time.Time, extra jwt.MapClaims) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "iss": "https://issuer.test", "aud": "offsync",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "role": "admin"}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func TestJWTRefusals(t *testing.T) {
	ctx := context.Background()
	keys := jwttest.NewKeys(t)
	clk := &testClock{t: jwtEpoch}
	now := clk.Now()
	a, err := server.NewJWT(ctx, server.JWTOptions{
		HS256Secret: keys.Secret, JWKSFile: keys.WriteJWKS(t),
		Issuer: "https://issuer.test", Audience: "offsync", Leeway: 30 * time.Second,
		Attrs: map[string]string{"role": "role"}, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	jwksOnly, err := server.NewJWT(ctx, server.JWTOptions{JWKSFile: keys.WriteJWKS(t), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		auth   *server.JWT
		token  string
		reason string // part of the error's text; "" for an accepted token
	}{
		{"hs256", a, keys.HS256(t, claims(now, nil)), ""},
		{"rs256", a, keys.RS256(t, claims(now, nil)), ""},
		{"es256", a, keys.ES256(t, claims(now, nil)), ""},
		{"within leeway", a, keys.HS256(t, claims(now, jwt.MapClaims{"exp": now.Add(-10 * time.Second).Unix()})), ""},
		{"expired", a, keys.HS256(t, claims(now, jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})), "expired"},
		{"no exp", a, keys.HS256(t, claims(now, jwt.MapClaims{"exp": nil})), "exp"},
		{"not yet valid", a, keys.RS256(t, claims(now, jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()})), "not valid yet"},
		{"issued in the future", a, keys.RS256(t, claims(now, jwt.MapClaims{"iat": now.Add(time.Minute).Unix()})), "before issued"},
		{"wrong audience", a, keys.ES256(t, claims(now, jwt.MapClaims{"aud": "someone-else"})), "audience"},
		{"no audience", a, keys.ES256(t, claims(now, jwt.MapClaims{"aud": nil})), "aud"},
		{"wrong issuer", a, keys.HS256(t, claims(now, jwt.MapClaims{"iss": "https://evil.test"})), "issuer"},
		{"alg none", a, jwttest.None(t, claims(now, nil)), "signing method none is invalid"},
		{"key confusion, HS256 also configured", a,
			jwttest.Sign(t, jwt.SigningMethodHS256, keys.RSAKid, keys.RSAPublicPEM(), claims(now, nil)), "signature is invalid"},
		{"key confusion, JWKS only", jwksOnly,
			jwttest.Sign(t, jwt.SigningMethodHS256, keys.RSAKid, keys.RSAPublicPEM(), claims(now, nil)), "signing method HS256 is invalid"},
		{"unknown kid", a, jwttest.Sign(t, jwt.SigningMethodRS256, "rsa-9", keys.RSA, claims(now, nil)), `unknown key id "rsa-9"`},
		{"kid of the other key type", a, jwttest.Sign(t, jwt.SigningMethodRS256, keys.ECKid, keys.RSA, claims(now, nil)), `unknown key id "ec-1"`},
		{"signed by another key", a, jwttest.NewKeys(t).RS256(t, claims(now, nil)), "signature is invalid"},
		{"wrong secret", a, jwttest.NewKeys(t).HS256(t, claims(now, nil)), "signature is invalid"},
		{"no principal", a, keys.HS256(t, claims(now, jwt.MapClaims{"sub": nil})), `claim "sub"`},
		{"malformed", a, "not.a.jwt", "malformed"},
		{"empty", a, "", "no token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := c.auth.Authenticate(ctx, c.token)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if p.ID != "alice" {
					t.Fatalf("principal %q, want alice", p.ID)
				}
				return
			}
			if !errors.Is(err, core.ErrUnauthorized) {
				t.Fatalf("err = %v, want core.ErrUnauthorized", err)
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("err = %q, want the reason %q", err, c.reason)
			}
			if c.token != "" && strings.Contains(err.Error(), c.token) {
				t.Fatal("the error holds the token")
			}
		})
	}
}

func TestJWTPrincipal(t *testing.T) {
	ctx := context.Background()
	keys := jwttest.NewKeys(t)
	clk := &testClock{t: jwtEpoch}
	a, err := server.NewJWT(ctx, server.JWTOptions{HS256Secret: keys.Secret, PrincipalClaim: "uid",
		Attrs: map[string]string{"role": "role", "tenant": "org", "level": "lvl", "none": "absent"}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	exp := jwtEpoch.Add(90 * time.Second)
	tok := keys.HS256(t, jwt.MapClaims{"uid": "u-7", "sub": "ignored", "exp": exp.Unix(),
		"role": "admin", "org": "acme", "lvl": 3})
	p, err := a.Authenticate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "u-7" || p.Attrs["role"] != "admin" || p.Attrs["tenant"] != "acme" || p.Attrs["level"] != "3" {
		t.Fatalf("principal %+v", p)
	}
	if _, ok := p.Attrs["none"]; ok {
		t.Fatal("a missing claim made an attribute")
	}
	if !server.IsAdmin(p) {
		t.Fatal("role admin is not an administrator")
	}
	got, ok := server.PrincipalExpiry(p)
	if !ok || !got.Equal(exp) {
		t.Fatalf("PrincipalExpiry = %v %v, want %v", got, ok, exp)
	}
	if _, ok := server.PrincipalExpiry(core.Principal{ID: "static"}); ok {
		t.Fatal("a principal without the attribute expires")
	}
	if _, err := server.NewJWT(ctx, server.JWTOptions{HS256Secret: keys.Secret,
		Attrs: map[string]string{server.ExpiryAttr: "exp"}}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("mapping the expiry attribute: %v", err)
	}
}

func TestJWTOptionsRefused(t *testing.T) {
	ctx := context.Background()
	bad := filepathJoin(t, "bad.json", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)
	for name, o := range map[string]server.JWTOptions{
		"nothing":         {},
		"file and url":    {JWKSFile: "a", JWKSURL: "http://127.0.0.1:1/"},
		"missing file":    {JWKSFile: "/nonexistent/jwks.json"},
		"no usable key":   {JWKSFile: bad},
		"negative leeway": {HS256Secret: []byte("s"), Leeway: -time.Second},
	} {
		if _, err := server.NewJWT(ctx, o); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s: err = %v, want core.ErrInvalid", name, err)
		}
	}
}

// TestJWKSURLRefetch: an unknown kid reads the set again at most once per
// refresh interval, and a key added to the set is found after that read.
func TestJWKSURLRefetch(t *testing.T) {
	ctx := context.Background()
	keys := jwttest.NewKeys(t)
	next := jwttest.NewKeys(t)
	next.RSAKid = "rsa-2"
	var (
		hits    atomic.Int32
		rotated atomic.Bool
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if rotated.Load() {
			_, _ = w.Write(next.JWKS())
			return
		}
		_, _ = w.Write(keys.JWKS())
	}))
	defer srv.Close()
	clk := &testClock{t: jwtEpoch}
	a, err := server.NewJWT(ctx, server.JWTOptions{JWKSURL: srv.URL, JWKSRefresh: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 1 {
		t.Fatalf("%d reads at start, want 1", hits.Load())
	}
	claimsAt := func() jwt.MapClaims {
		n := clk.Now()
		return jwt.MapClaims{"sub": "alice", "exp": n.Add(time.Hour).Unix()}
	}
	if _, err := a.Authenticate(ctx, keys.RS256(t, claimsAt())); err != nil {
		t.Fatal(err)
	}
	rotated.Store(true)
	for range 5 {
		if _, err := a.Authenticate(ctx, next.RS256(t, claimsAt())); !errors.Is(err, core.ErrUnauthorized) {
			t.Fatalf("a kid not read yet: %v", err)
		}
	}
	if hits.Load() != 1 {
		t.Fatalf("%d reads within the interval, want 1 (no refetch before the interval)", hits.Load())
	}
	clk.Add(time.Minute)
	for range 5 {
		if _, err := a.Authenticate(ctx, next.RS256(t, claimsAt())); err != nil {
			t.Fatalf("the rotated key after the interval: %v", err)
		}
	}
	if hits.Load() != 2 {
		t.Fatalf("%d reads, want 2", hits.Load())
	}
	// The old key left the set.
	if _, err := a.Authenticate(ctx, keys.RS256(t, claimsAt())); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("a key removed from the set: %v", err)
	}
	// A set that cannot be read keeps the keys read before.
	srv.Close()
	clk.Add(time.Minute)
	if _, err := a.Authenticate(ctx, next.RS256(t, claimsAt())); err != nil {
		t.Fatalf("after a failed read, the cached key: %v", err)
	}
}

func TestStreamContext(t *testing.T) {
	base := context.Background()
	past := core.Principal{ID: "a", Attrs: map[string]string{server.ExpiryAttr: "1000"}}
	ctx, cancel := server.StreamContext(core.WithPrincipal(base, past))
	defer cancel()
	<-ctx.Done()
	if !server.Expired(ctx) || !errors.Is(context.Cause(ctx), core.ErrUnauthorized) {
		t.Fatalf("an expired principal's stream: cause %v", context.Cause(ctx))
	}
	ctx2, cancel2 := server.StreamContext(core.WithPrincipal(base, core.Principal{ID: "static"}))
	if _, has := ctx2.Deadline(); has || ctx2.Err() != nil {
		t.Fatal("a principal without expiry got a deadline")
	}
	cancel2()
	if server.Expired(ctx2) {
		t.Fatal("a cancelled stream reads as expired")
	}
}

func filepathJoin(t *testing.T, name, content string) string {
	t.Helper()
	p := t.TempDir() + "/" + name
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
