package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/offsync/offsync/core"
)

// DefaultJWKSRefresh is how often a JWT authenticator reads its key set
// again, and the least time between two reads caused by an unknown key id.
const DefaultJWKSRefresh = 5 * time.Minute

// DefaultPrincipalClaim is the claim that names the principal.
const DefaultPrincipalClaim = "sub"

// JWTOptions configure a JWT authenticator (NewJWT). At least one of
// HS256Secret, JWKSFile and JWKSURL is required.
type JWTOptions struct {
	// HS256Secret verifies HS256 tokens. Without it HS256 is refused.
	HS256Secret []byte
	// JWKSFile and JWKSURL name a JSON Web Key Set (RFC 7517) whose RSA and
	// P-256 keys verify RS256 and ES256 tokens, chosen by the token's "kid"
	// (a token without one is accepted only when the set holds exactly one
	// key of its type). Without either, RS256 and ES256 are refused. At most
	// one of the two may be set.
	JWKSFile string
	JWKSURL  string
	// JWKSRefresh is how often the set is read again (default
	// DefaultJWKSRefresh). A token with an unknown key id reads it again at
	// most once per JWKSRefresh; meanwhile such tokens are refused.
	JWKSRefresh time.Duration
	// HTTPClient fetches JWKSURL (http.DefaultClient when nil).
	HTTPClient *http.Client
	// Issuer, when set, must be the token's "iss".
	Issuer string
	// Audience, when set, must be one of the token's "aud".
	Audience string
	// Leeway tolerates clock skew on "exp", "nbf" and "iat".
	Leeway time.Duration
	// PrincipalClaim names the claim holding the principal's ID, a
	// non-empty string (default "sub").
	PrincipalClaim string
	// Attrs maps a principal attribute to the claim it is read from (e.g.
	// "role": "role"). A string claim is taken as it is, a number or a
	// boolean as its JSON text, anything else as its JSON; a missing claim
	// leaves the attribute out. ExpiryAttr may not be mapped.
	Attrs map[string]string
	// Now is the authenticator's clock (time.Now when nil).
	Now func() time.Time
	// Logger receives key-set read failures (never a token); discarded
	// when nil.
	Logger *slog.Logger
}

// JWT authenticates signed JSON Web Tokens: HS256 with a shared secret,
// RS256 and ES256 with the keys of a JWKS. Every token must carry "exp";
// "nbf" and "iat", when present, are checked; "alg": "none" and any
// algorithm that is not configured are refused, so a token signed with
// HS256 over an RSA public key ("key confusion") never verifies. The
// principal carries its expiry (PrincipalExpiry), so that long-lived
// streams end when the token does.
type JWT struct {
	opts    JWTOptions
	parser  *jwt.Parser
	methods []string
	log     *slog.Logger

	mu        sync.Mutex
	keys      map[string]any // kid → *rsa.PublicKey | *ecdsa.PublicKey
	fetched   time.Time      // last read attempt of the set
	haveSet   bool           // a set was read at least once
	fetchBusy chan struct{}  // closed when the read under way ends
}

// NewJWT returns a JWT authenticator. It checks opts and, with a key set,
// reads it once now: a set that cannot be read or holds no usable key is an
// error (core.ErrInvalid).
func NewJWT(ctx context.Context, opts JWTOptions) (*JWT, error) {
	if len(opts.HS256Secret) == 0 && opts.JWKSFile == "" && opts.JWKSURL == "" {
		return nil, fmt.Errorf("server: jwt: %w: set an HS256 secret, a JWKS file or a JWKS URL", core.ErrInvalid)
	}
	if opts.JWKSFile != "" && opts.JWKSURL != "" {
		return nil, fmt.Errorf("server: jwt: %w: set a JWKS file or a JWKS URL, not both", core.ErrInvalid)
	}
	if opts.Leeway < 0 || opts.JWKSRefresh < 0 {
		return nil, fmt.Errorf("server: jwt: %w: negative leeway or refresh", core.ErrInvalid)
	}
	if opts.JWKSRefresh == 0 {
		opts.JWKSRefresh = DefaultJWKSRefresh
	}
	if opts.PrincipalClaim == "" {
		opts.PrincipalClaim = DefaultPrincipalClaim
	}
	if _, ok := opts.Attrs[ExpiryAttr]; ok {
		return nil, fmt.Errorf("server: jwt: %w: attribute %q is reserved for the token's expiry", core.ErrInvalid, ExpiryAttr)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = http.DefaultClient
	}
	a := &JWT{opts: opts, log: opts.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if len(opts.HS256Secret) > 0 {
		a.methods = append(a.methods, jwt.SigningMethodHS256.Alg())
	}
	if opts.JWKSFile != "" || opts.JWKSURL != "" {
		a.methods = append(a.methods, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
		keys, err := a.readSet(ctx)
		if err != nil {
			return nil, fmt.Errorf("server: jwt: %w: %v", core.ErrInvalid, err)
		}
		a.keys, a.fetched, a.haveSet = keys, opts.Now(), true
	}
	po := []jwt.ParserOption{
		jwt.WithValidMethods(a.methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(opts.Now),
	}
	if opts.Issuer != "" {
		po = append(po, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		po = append(po, jwt.WithAudience(opts.Audience))
	}
	a.parser = jwt.NewParser(po...)
	return a, nil
}

// Authenticate verifies token and returns its principal. A refused token
// is core.ErrUnauthorized with the reason (never the token itself); a key
// set that cannot be read and is not cached is core.ErrUnavailable.
func (a *JWT) Authenticate(ctx context.Context, token string) (core.Principal, error) {
	if token == "" {
		return core.Principal{}, fmt.Errorf("%w: jwt: no token", core.ErrUnauthorized)
	}
	var unavailable error
	claims := jwt.MapClaims{}
	_, err := a.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		switch t.Method.Alg() {
		case jwt.SigningMethodHS256.Alg():
			return a.opts.HS256Secret, nil
		case jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg():
			kid, _ := t.Header["kid"].(string)
			k, err := a.key(ctx, kid, t.Method.Alg())
			if errors.Is(err, core.ErrUnavailable) {
				unavailable = err
			}
			return k, err
		}
		return nil, fmt.Errorf("algorithm %q is not accepted", t.Method.Alg())
	})
	if unavailable != nil {
		return core.Principal{}, fmt.Errorf("server: jwt: %w", unavailable)
	}
	if err != nil {
		return core.Principal{}, fmt.Errorf("%w: jwt: %v", core.ErrUnauthorized, err)
	}
	id, ok := claims[a.opts.PrincipalClaim].(string)
	if !ok || id == "" {
		return core.Principal{}, fmt.Errorf("%w: jwt: claim %q (the principal) is missing or not a non-empty string", core.ErrUnauthorized, a.opts.PrincipalClaim)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return core.Principal{}, fmt.Errorf("%w: jwt: no usable exp", core.ErrUnauthorized)
	}
	p := core.Principal{ID: id, Attrs: map[string]string{}}
	for attr, claim := range a.opts.Attrs {
		v, ok := claims[claim]
		if !ok || v == nil {
			continue
		}
		switch v := v.(type) {
		case string:
			p.Attrs[attr] = v
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return core.Principal{}, fmt.Errorf("%w: jwt: claim %q: %v", core.ErrUnauthorized, claim, err)
			}
			p.Attrs[attr] = string(b)
		}
	}
	// The stream ends when the token would be refused: at exp + leeway.
	p.Attrs[ExpiryAttr] = strconv.FormatInt(exp.Add(a.opts.Leeway).UnixMilli(), 10)
	return p, nil
}

// key returns the verification key of kid for alg, reading the set again
// when it is due or when kid is unknown and the last read is older than
// JWKSRefresh.
func (a *JWT) key(ctx context.Context, kid, alg string) (any, error) {
	for attempt := 0; ; attempt++ {
		a.mu.Lock()
		now := a.opts.Now()
		due := now.Sub(a.fetched) >= a.opts.JWKSRefresh
		k, found := pickKey(a.keys, kid, alg)
		if found && !due {
			a.mu.Unlock()
			return k, nil
		}
		if attempt > 0 || !due {
			a.mu.Unlock()
			if found {
				return k, nil
			}
			if kid == "" {
				return nil, fmt.Errorf("no kid, and the key set does not hold exactly one %s key", alg)
			}
			return nil, fmt.Errorf("unknown key id %q for %s", kid, alg)
		}
		if busy := a.fetchBusy; busy != nil {
			a.mu.Unlock()
			select {
			case <-busy:
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %v", core.ErrUnavailable, ctx.Err())
			}
			continue
		}
		busy := make(chan struct{})
		a.fetchBusy = busy
		a.fetched = now
		a.mu.Unlock()

		keys, err := a.readSet(ctx)
		a.mu.Lock()
		if err == nil {
			a.keys, a.haveSet = keys, true
		}
		haveSet := a.haveSet
		a.fetchBusy = nil
		close(busy)
		a.mu.Unlock()
		if err != nil {
			a.log.WarnContext(ctx, "jwt: reading the key set failed; keeping the keys read before", "err", err)
			if !haveSet {
				return nil, fmt.Errorf("%w: the key set cannot be read: %v", core.ErrUnavailable, err)
			}
		}
	}
}

// pickKey finds kid's key for alg; without a kid, the only key of alg's type.
func pickKey(keys map[string]any, kid, alg string) (any, bool) {
	fits := func(k any) bool {
		switch k.(type) {
		case *rsa.PublicKey:
			return alg == jwt.SigningMethodRS256.Alg()
		case *ecdsa.PublicKey:
			return alg == jwt.SigningMethodES256.Alg()
		}
		return false
	}
	if kid != "" {
		k, ok := keys[kid]
		return k, ok && fits(k)
	}
	var only any
	n := 0
	for _, k := range keys {
		if fits(k) {
			only = k
			n++
		}
	}
	return only, n == 1
}

// readSet reads and parses the configured key set.
func (a *JWT) readSet(ctx context.Context) (map[string]any, error) {
	var data []byte
	if a.opts.JWKSFile != "" {
		b, err := os.ReadFile(a.opts.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("read the JWKS file: %v", err)
		}
		data = b
	} else {
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(fctx, http.MethodGet, a.opts.JWKSURL, nil)
		if err != nil {
			return nil, fmt.Errorf("JWKS URL: %v", err)
		}
		req.Header.Set("Accept", "application/json")
		resp, err := a.opts.HTTPClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch the JWKS: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("fetch the JWKS: status %d", resp.StatusCode)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("fetch the JWKS: %v", err)
		}
		data = b
	}
	return ParseJWKS(data)
}

// ParseJWKS reads a JSON Web Key Set and returns its RSA and P-256 public
// keys by key id. Keys for another use than "sig", of another type or
// curve, or without a kid are skipped; a set without a usable key is an
// error.
func ParseJWKS(data []byte) (map[string]any, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %v", err)
	}
	keys := map[string]any{}
	b64 := base64.RawURLEncoding
	for i, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Kty {
		case "RSA":
			if k.Alg != "" && k.Alg != "RS256" {
				continue
			}
			n, err1 := b64.DecodeString(k.N)
			e, err2 := b64.DecodeString(k.E)
			if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
				return nil, fmt.Errorf("JWKS: key %d (%q): bad RSA n or e", i, k.Kid)
			}
			pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
			if pub.N.BitLen() < 2048 {
				return nil, fmt.Errorf("JWKS: key %d (%q): an RSA key needs at least 2048 bits", i, k.Kid)
			}
			keys[k.Kid] = pub
		case "EC":
			if k.Crv != "P-256" || (k.Alg != "" && k.Alg != "ES256") {
				continue
			}
			x, err1 := b64.DecodeString(k.X)
			y, err2 := b64.DecodeString(k.Y)
			if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
				return nil, fmt.Errorf("JWKS: key %d (%q): bad P-256 x or y", i, k.Kid)
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				return nil, fmt.Errorf("JWKS: key %d (%q): %v", i, k.Kid, err)
			}
			keys[k.Kid] = pub
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("JWKS: no RSA or P-256 signing key")
	}
	return keys, nil
}
