package offsync_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/graphql"
	"github.com/offsync/offsync/drivers/transport/grpc"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/drivers/transport/websocket"
	"github.com/offsync/offsync/internal/jwttest"
)

// tokenFunc is every first-party client's token source.
type tokenFunc = func(ctx context.Context, refresh bool) (string, error)

// everyClient opens each first-party client on the endpoints of one
// offsync.ServeWith, with a token source.
var everyClient = []struct {
	name string
	open func(t *testing.T, ep map[string]string, tok tokenFunc) core.Transport
}{
	{"rest", func(t *testing.T, ep map[string]string, tok tokenFunc) core.Transport {
		return rest.NewClient(strings.TrimSuffix(ep["rest"], "/"), &rest.Options{Token: tok, Timeout: 10 * time.Second})
	}},
	{"websocket", func(t *testing.T, ep map[string]string, tok tokenFunc) core.Transport {
		c := websocket.NewClient(ep["websocket"], &websocket.Options{Token: tok})
		t.Cleanup(func() { c.Close() })
		return c
	}},
	{"grpc", func(t *testing.T, ep map[string]string, tok tokenFunc) core.Transport {
		c, err := grpc.NewClient(ep["grpc"], &grpc.Options{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}},
	{"graphql", func(t *testing.T, ep map[string]string, tok tokenFunc) core.Transport {
		c, err := graphql.NewClient(ep["graphql"], &graphql.Options{Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}},
}

func staticToken(tok string) tokenFunc {
	return func(context.Context, bool) (string, error) { return tok, nil }
}

// jwtServe serves every half with a static token ("static-tok", principal
// "ops"), server.jwt (HS256 and a JWKS file, issuer and audience) and
// extra server keys.
func jwtServe(t *testing.T, extra string) (map[string]string, *jwttest.Keys) {
	t.Helper()
	dir := t.TempDir()
	keys := jwttest.NewKeys(t)
	keys.Secret = []byte(hex.EncodeToString(keys.Secret)) // 64 bytes, writable in YAML
	ep := serveWith(t, dir, fmt.Sprintf(`store: {dsn: %q}
server:
  http: 127.0.0.1:0
  kinds: [note]
  tokens: [{token: static-tok, principal: ops}]
  jwt:
    hs256_secret: %q
    jwks_file: %q
    issuer: https://issuer.test
    audience: offsync
%s`, filepath.Join(dir, "server.db"), keys.Secret, keys.WriteJWKS(t), extra))
	for _, c := range everyClient {
		if _, ok := ep[c.name]; !ok {
			t.Fatalf("%s is not served: %v", c.name, ep)
		}
	}
	return ep, keys
}

func goodClaims(sub string, exp time.Time) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": sub, "iss": "https://issuer.test", "aud": "offsync",
		"iat": now.Unix(), "exp": exp.Unix()}
}

// Every refused token of the JWT authenticator is refused by every wire
// form (core.ErrUnauthorized at the client); good tokens of each algorithm
// and the static token are served.
func TestJWTOnEveryTransport(t *testing.T) {
	ep, keys := jwtServe(t, "")
	now := time.Now()
	hour := now.Add(time.Hour)
	with := func(extra jwt.MapClaims) jwt.MapClaims {
		c := goodClaims("alice", hour)
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	good := map[string]string{
		"hs256":  keys.HS256(t, with(nil)),
		"rs256":  keys.RS256(t, with(nil)),
		"es256":  keys.ES256(t, with(nil)),
		"static": "static-tok",
	}
	bad := map[string]string{
		"expired":        keys.RS256(t, with(jwt.MapClaims{"exp": now.Add(-time.Hour).Unix()})),
		"not yet valid":  keys.RS256(t, with(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix()})),
		"wrong audience": keys.ES256(t, with(jwt.MapClaims{"aud": "another-service"})),
		"wrong issuer":   keys.HS256(t, with(jwt.MapClaims{"iss": "https://evil.test"})),
		"alg none":       jwttest.None(t, with(nil)),
		"key confusion":  jwttest.Sign(t, jwt.SigningMethodHS256, keys.RSAKid, keys.RSAPublicPEM(), with(nil)),
		"unknown kid":    jwttest.Sign(t, jwt.SigningMethodRS256, "rsa-unknown", keys.RSA, with(nil)),
	}
	ctx := context.Background()
	for _, c := range everyClient {
		t.Run(c.name, func(t *testing.T) {
			for name, tok := range good {
				cl := c.open(t, ep, staticToken(tok))
				if _, err := cl.Pull(ctx, core.PullRequest{Kind: "note"}); err != nil {
					t.Errorf("%s token refused: %v", name, err)
				}
			}
			for name, tok := range bad {
				cl := c.open(t, ep, staticToken(tok))
				_, err := cl.Pull(ctx, core.PullRequest{Kind: "note"})
				if !errors.Is(err, core.ErrUnauthorized) {
					t.Errorf("%s token: err = %v, want core.ErrUnauthorized", name, err)
				}
			}
		})
	}
}

// expiringSource hands out a token that expires soon first, then tokens
// valid for an hour, each time it is asked with refresh=true (or has no
// token yet). It counts the refreshes.
type expiringSource struct {
	keys      *jwttest.Keys
	t         *testing.T
	mu        sync.Mutex
	tok       string
	minted    int
	refreshes atomic.Int32
}

func (s *expiringSource) token(_ context.Context, refresh bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if refresh {
		s.refreshes.Add(1)
	}
	if s.tok == "" || refresh {
		life := time.Hour
		if s.minted == 0 {
			life = 2 * time.Second
		}
		s.minted++
		s.tok = s.keys.ES256(s.t, goodClaims("alice", time.Now().Add(life)))
	}
	return s.tok, nil
}

// A token that expires while a stream is open ends the stream with the
// wire's unauthorized code; the client asks its token source again
// (refresh=true), subscribes again (a Gap notice) and carries on, and an
// engine on the same client loses no op.
func TestJWTExpiryMidStream(t *testing.T) {
	ep, keys := jwtServe(t, "")
	ctx := context.Background()
	writer := everyClient[0].open(t, ep, staticToken("static-tok"))
	for _, c := range everyClient {
		t.Run(c.name, func(t *testing.T) {
			src := &expiringSource{keys: keys, t: t}
			cl := c.open(t, ep, src.token)
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			notices, err := cl.(core.Subscriber).Subscribe(sctx, []string{"note"})
			if err != nil {
				t.Fatal(err)
			}
			// An engine on the same client: one op before the expiry.
			st, err := core.OpenStore(ctx, "sqlite", filepath.Join(t.TempDir(), "replica.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			eng, err := core.NewEngine(ctx, st, cl, &core.Options{Tables: []core.Table{core.Documents("note")}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { eng.Close(); st.Close() }()
			notes, _ := eng.Table("note")
			docs := core.DocsFor(eng, notes.(*core.DocumentTable))
			before, after := c.name+"-before", c.name+"-after"
			if err := docs.Put(ctx, before, map[string]any{"at": "before"}); err != nil {
				t.Fatal(err)
			}
			if _, err := eng.Sync(ctx); err != nil {
				t.Fatalf("sync before the expiry: %v", err)
			}
			// The stream ends at the expiry and comes back: a Gap notice,
			// after the source was asked for a new token.
			waitNotice(t, notices, func(n core.Notice) bool { return n.Gap }, "a gap after the token expired")
			if src.refreshes.Load() == 0 {
				t.Fatal("the client reconnected without asking its token source to refresh")
			}
			// The stream carries on: a write by someone else is announced.
			if _, err := writer.Push(ctx, []core.Op{{OpID: c.name + "-other", Kind: "note", ID: c.name + "-other",
				Type: core.OpUpsert, Payload: []byte(`{"by":"ops"}`)}}); err != nil {
				t.Fatal(err)
			}
			waitNotice(t, notices, func(n core.Notice) bool { return n.Kind == "note" && !n.Gap }, "a notice after the reconnect")
			// An op written after the expiry goes through.
			if err := docs.Put(ctx, after, map[string]any{"at": "after"}); err != nil {
				t.Fatal(err)
			}
			syncUntil(t, eng)
			for _, id := range []string{before, after} {
				if _, err := writer.(core.Getter).Get(ctx, "note", id); err != nil {
					t.Fatalf("the authority lacks %s: %v", id, err)
				}
			}
			assertNothingLost(t, eng)
		})
	}
}

// A principal over its rate is answered with the wire's "retry later" form
// (core.ErrRateLimited at the client, REST's 429 with Retry-After), and an
// engine over the limit backs off and loses no op.
func TestRateLimitOnEveryTransport(t *testing.T) {
	ep, keys := jwtServe(t, "  rate_limit: {per_second: 5, burst: 5}\n")
	ctx := context.Background()
	for _, c := range everyClient {
		t.Run(c.name, func(t *testing.T) {
			// Each transport's caller is its own principal: its own bucket.
			tok := keys.HS256(t, goodClaims("rl-"+c.name, time.Now().Add(time.Hour)))
			var refreshes atomic.Int32
			cl := c.open(t, ep, func(_ context.Context, refresh bool) (string, error) {
				if refresh {
					refreshes.Add(1)
				}
				return tok, nil
			})
			var err error
			for range 50 {
				if _, err = cl.Pull(ctx, core.PullRequest{Kind: "note"}); err != nil {
					break
				}
			}
			if !errors.Is(err, core.ErrRateLimited) || !core.Retryable(err) {
				t.Fatalf("50 pulls at once: err = %v, want core.ErrRateLimited", err)
			}
			// A stream opened over the rate is "retry later" too, never
			// a refused token.
			for range 50 {
				sctx, cancel := context.WithCancel(ctx)
				_, err = cl.(core.Subscriber).Subscribe(sctx, []string{"note"})
				cancel()
				if err != nil {
					break
				}
			}
			if !errors.Is(err, core.ErrUnavailable) || errors.Is(err, core.ErrUnauthorized) {
				t.Fatalf("subscribing over the rate: err = %v, want retry later", err)
			}
			if n := refreshes.Load(); n != 0 {
				t.Fatalf("the rate limit made the client refresh its token %d times", n)
			}
			st, err := core.OpenStore(ctx, "sqlite", filepath.Join(t.TempDir(), "replica.db"), nil)
			if err != nil {
				t.Fatal(err)
			}
			eng, err := core.NewEngine(ctx, st, cl, &core.Options{Tables: []core.Table{core.Documents("note")}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { eng.Close(); st.Close() }()
			notes, _ := eng.Table("note")
			docs := core.DocsFor(eng, notes.(*core.DocumentTable))
			for i := range 20 {
				if err := docs.Put(ctx, fmt.Sprintf("%s-%d", c.name, i), map[string]any{"i": i}); err != nil {
					t.Fatal(err)
				}
			}
			syncUntil(t, eng)
			assertNothingLost(t, eng)
			got := 0
			pager := everyClient[0].open(t, ep, staticToken("static-tok"))
			page, err := pager.Pull(ctx, core.PullRequest{Kind: "note", Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				if strings.HasPrefix(r.ID, c.name+"-") {
					got++
				}
			}
			if got != 20 {
				t.Fatalf("the authority holds %d of the 20 notes written over %s", got, c.name)
			}
		})
	}
}

// waitNotice reads notices until one matches (bounded; the test fails
// when none comes).
func waitNotice(t *testing.T, ch <-chan core.Notice, match func(core.Notice) bool, what string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case n, ok := <-ch:
			if !ok {
				t.Fatalf("waiting for %s: the subscription ended", what)
			}
			if match(n) {
				return
			}
		case <-timeout:
			t.Fatalf("waited 30 s for %s in vain", what)
		}
	}
}

// syncUntil syncs until a sync succeeds with nothing left to push, waiting
// between tries as a replica's timer would (bounded).
func syncUntil(t *testing.T, eng *core.Engine) {
	t.Helper()
	ctx := context.Background()
	var err error
	for range 100 {
		if _, err = eng.Sync(ctx); err == nil {
			pending, perr := eng.Pending(ctx)
			if perr != nil {
				t.Fatal(perr)
			}
			if len(pending) == 0 {
				return
			}
		} else if !core.Retryable(err) {
			t.Fatalf("sync: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the engine never caught up: %v", err)
}

// assertNothingLost checks that no op is pending or dead.
func assertNothingLost(t *testing.T, eng *core.Engine) {
	t.Helper()
	ctx := context.Background()
	pending, err := eng.Pending(ctx)
	if err != nil || len(pending) != 0 {
		t.Fatalf("pending ops: %+v %v", pending, err)
	}
	dead, err := eng.DeadLetters(ctx)
	if err != nil || len(dead) != 0 {
		t.Fatalf("dead letters: %+v %v", dead, err)
	}
}

// REST's form of the rate limit: 429, rate_limited, Retry-After in whole
// seconds.
func TestRateLimitRESTRetryAfter(t *testing.T) {
	ep, _ := jwtServe(t, "  rate_limit: {per_second: 1, burst: 1}\n")
	get := func() *http.Response {
		req, _ := http.NewRequest(http.MethodGet, ep["rest"]+"note", nil)
		req.Header.Set("Authorization", "Bearer static-tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get(); r.StatusCode != http.StatusOK {
		t.Fatalf("first request: %d", r.StatusCode)
	}
	var r *http.Response
	for range 10 {
		if r = get(); r.StatusCode != http.StatusOK {
			break
		}
	}
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("over the rate: %d, Retry-After %q; want 429 and 1", r.StatusCode, r.Header.Get("Retry-After"))
	}
}
