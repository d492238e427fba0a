package grpc_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	ogrpc "github.com/offsync/offsync/drivers/transport/grpc"
	"github.com/offsync/offsync/server"
)

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "offsync test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestTLS: the server half serves TLS from TransportConfig.TLS and the
// client reaches it at grpcs://; a client that does not trust the
// certificate gets core.ErrUnavailable.
func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	svc := newAuthority(t, nil)
	r := serve(t, svc, server.TransportConfig{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	c, err := ogrpc.NewClient("grpcs://"+r.addr, &ogrpc.Options{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Push(t.Context(), []core.Op{{OpID: "tls-1", Kind: "note", ID: "a", Type: core.OpUpsert, Payload: []byte(`{}`)}})
	if err != nil || res[0].Status != core.StatusApplied {
		t.Fatalf("push over TLS: %v, %v", res, err)
	}
	untrusting, err := ogrpc.NewClient("grpcs://"+r.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer untrusting.Close()
	if _, err := untrusting.Pull(t.Context(), core.PullRequest{Kind: "note"}); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("pull without trusting the certificate: %v, want ErrUnavailable", err)
	}
}
