package jwttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Keys are an RSA and a P-256 signing key with their key ids, and an HS256
// secret.
type Keys struct {
	RSA    *rsa.PrivateKey
	RSAKid string
	EC     *ecdsa.PrivateKey
	ECKid  string
	Secret []byte
}

// NewKeys makes fresh keys (kids "rsa-1" and "ec-1").
func NewKeys(t testing.TB) *Keys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return &Keys{RSA: rk, RSAKid: "rsa-1", EC: ek, ECKid: "ec-1", Secret: secret}
}

// JWKS returns the public key set of k as JSON.
func (k *Keys) JWKS() []byte {
	b64 := base64.RawURLEncoding
	ecb, err := k.EC.PublicKey.Bytes() // 0x04 || x || y
	if err != nil {
		panic(err)
	}
	set := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": k.RSAKid, "use": "sig", "alg": "RS256",
			"n": b64.EncodeToString(k.RSA.N.Bytes()),
			"e": b64.EncodeToString(big.NewInt(int64(k.RSA.E)).Bytes())},
		{"kty": "EC", "kid": k.ECKid, "use": "sig", "alg": "ES256", "crv": "P-256",
			"x": b64.EncodeToString(ecb[1:33]), "y": b64.EncodeToString(ecb[33:])},
	}}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

// WriteJWKS writes the key set to a file in t.TempDir() and returns its path.
func (k *Keys) WriteJWKS(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, k.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// RSAPublicPEM is the RSA public key as PEM, the bytes a key-confusion
// attack uses as an HS256 secret.
func (k *Keys) RSAPublicPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(&k.RSA.PublicKey)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// HS256 signs claims with the secret.
func (k *Keys) HS256(t testing.TB, claims jwt.MapClaims) string {
	return Sign(t, jwt.SigningMethodHS256, "", k.Secret, claims)
}

// RS256 signs claims with the RSA key and its kid.
func (k *Keys) RS256(t testing.TB, claims jwt.MapClaims) string {
	return Sign(t, jwt.SigningMethodRS256, k.RSAKid, k.RSA, claims)
}

// ES256 signs claims with the P-256 key and its kid.
func (k *Keys) ES256(t testing.TB, claims jwt.MapClaims) string {
	return Sign(t, jwt.SigningMethodES256, k.ECKid, k.EC, claims)
}

// Sign signs claims with method and key, setting the kid header when given.
func Sign(t testing.TB, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// None is an unsigned token ("alg": "none").
func None(t testing.TB, claims jwt.MapClaims) string {
	return Sign(t, jwt.SigningMethodNone, "", jwt.UnsafeAllowNoneSignatureType, claims)
}
