package config

import (
	"net/url"
	"slices"
	"time"

	"github.com/offsync/offsync/server"
)

// JWT configures signed tokens (JSON Web Tokens): HS256 with a shared
// secret, RS256 and ES256 with the keys of a JSON Web Key Set read from a
// file or a URL. At least one of HS256Secret, JWKSFile and JWKSURL is
// required. Static tokens (Tokens, TokensFile) keep working beside it: a
// bearer token that is one of them is that principal, any other is checked
// as a JWT.
type JWT struct {
	// HS256Secret verifies HS256 tokens; write it as "${ENV_VAR}".
	HS256Secret string `yaml:"hs256_secret"`
	// JWKSFile is a key set file, relative to the config file.
	JWKSFile string `yaml:"jwks_file"`
	// JWKSURL is a key set URL (http or https).
	JWKSURL string `yaml:"jwks_url"`
	// JWKSRefresh is how often the key set is read again, and the least
	// time between two reads caused by an unknown key id (default 5m).
	JWKSRefresh time.Duration `yaml:"jwks_refresh"`
	// Issuer, when set, must be the token's "iss".
	Issuer string `yaml:"issuer"`
	// Audience, when set, must be among the token's "aud".
	Audience string `yaml:"audience"`
	// Leeway tolerates clock skew on exp, nbf and iat (default 0).
	Leeway time.Duration `yaml:"leeway"`
	// PrincipalClaim names the claim holding the principal's ID (default
	// "sub").
	PrincipalClaim string `yaml:"principal_claim"`
	// Attrs maps a principal attribute to the claim it comes from, e.g.
	// {role: role} (role "admin" opens /metrics and /ui).
	Attrs map[string]string `yaml:"attrs"`
}

// RateLimit bounds the requests of each principal (a token bucket): every
// REST request, WebSocket frame, gRPC call, GraphQL operation and stream
// opening takes one token. Beyond it the answer is the wire's "retry
// later" (REST 429 with Retry-After).
type RateLimit struct {
	// PerSecond is the sustained rate per principal. Required, positive.
	PerSecond int `yaml:"per_second"`
	// Burst is how many requests may come at once (default PerSecond).
	Burst int `yaml:"burst"`
}

// JWTOptions returns the authenticator options of server.jwt (JWKSFile
// resolved against the config file's directory); ok is false when
// server.jwt is absent.
func (s *Server) JWTOptions() (o server.JWTOptions, ok bool) {
	j := s.Server.JWT
	if j == nil {
		return o, false
	}
	o = server.JWTOptions{JWKSFile: s.Path(j.JWKSFile), JWKSURL: j.JWKSURL, JWKSRefresh: j.JWKSRefresh,
		Issuer: j.Issuer, Audience: j.Audience, Leeway: j.Leeway, PrincipalClaim: j.PrincipalClaim, Attrs: j.Attrs}
	if j.HS256Secret != "" {
		o.HS256Secret = []byte(j.HS256Secret)
	}
	return o, true
}

// RateLimitOptions returns server.rate_limit with its default burst; ok is
// false when it is absent.
func (s *Server) RateLimitOptions() (l server.RateLimit, ok bool) {
	r := s.Server.RateLimit
	if r == nil {
		return l, false
	}
	burst := r.Burst
	if burst == 0 {
		burst = r.PerSecond
	}
	return server.RateLimit{PerSecond: float64(r.PerSecond), Burst: burst}, true
}

// validateAuth checks server.jwt and server.rate_limit.
func (s *Server) validateAuth(d *decoder) {
	if j := s.Server.JWT; j != nil {
		switch {
		case j.HS256Secret == "" && j.JWKSFile == "" && j.JWKSURL == "":
			d.problemAt("server.jwt", invalid("jwt needs hs256_secret, jwks_file or jwks_url"))
		case j.JWKSFile != "" && j.JWKSURL != "":
			d.problemAt("server.jwt.jwks_url", invalid("set jwks_file or jwks_url, not both"))
		}
		if j.HS256Secret != "" && len(j.HS256Secret) < 32 {
			d.problemAt("server.jwt.hs256_secret", invalid("an HS256 secret needs at least 32 bytes, got %d", len(j.HS256Secret)))
		}
		if j.JWKSURL != "" {
			if u, err := url.Parse(j.JWKSURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				d.problemAt("server.jwt.jwks_url", invalid("jwks_url %q is not an http or https URL", j.JWKSURL))
			}
		}
		d.nonNegative("server.jwt.leeway", int64(j.Leeway))
		d.nonNegative("server.jwt.jwks_refresh", int64(j.JWKSRefresh))
		for _, attr := range sortedKeys(j.Attrs) {
			p := "server.jwt.attrs." + attr
			switch {
			case attr == server.ExpiryAttr:
				d.problemAt(p, invalid("attribute %q is reserved for the token's expiry", attr))
			case j.Attrs[attr] == "":
				d.problemAt(p, invalid("attribute %q names no claim", attr))
			}
		}
		if slices.Contains([]string{"exp", "nbf", "iat", "aud", "iss"}, j.PrincipalClaim) {
			d.problemAt("server.jwt.principal_claim", invalid("claim %q cannot name a principal", j.PrincipalClaim))
		}
	}
	if r := s.Server.RateLimit; r != nil {
		if r.PerSecond <= 0 {
			d.problemAt("server.rate_limit.per_second", invalid("per_second must be a positive number of requests"))
		}
		d.nonNegative("server.rate_limit.burst", int64(r.Burst))
		if v := s.Server; len(v.Tokens) == 0 && v.TokensFile == "" && v.JWT == nil {
			d.problemAt("server.rate_limit", invalid("a rate limit is per principal: set server.tokens, server.tokens_file or server.jwt"))
		}
	}
}
