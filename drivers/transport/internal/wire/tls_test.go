package wire

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

func TestOptionTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wire test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	if cfg, err := OptionTLS(map[string]any{"token": "x"}); cfg != nil || err != nil {
		t.Errorf("no TLS option: %v, %v", cfg, err)
	}
	own := &tls.Config{ServerName: "x"}
	if cfg, err := OptionTLS(map[string]any{"tls": own}); cfg != own || err != nil {
		t.Errorf("option tls: %v, %v", cfg, err)
	}
	cfg, err := OptionTLS(map[string]any{"ca_file": caFile})
	if err != nil || cfg.RootCAs == nil {
		t.Fatalf("option ca_file: %v, %v", cfg, err)
	}
	leaf, _ := x509.ParseCertificate(der)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: cfg.RootCAs}); err != nil {
		t.Errorf("the pool of ca_file does not trust its certificate: %v", err)
	}
	for name, opts := range map[string]map[string]any{
		"both":          {"tls": own, "ca_file": caFile},
		"tls not *tls":  {"tls": "yes"},
		"nil *tls":      {"tls": (*tls.Config)(nil)},
		"ca_file int":   {"ca_file": 3},
		"ca_file empty": {"ca_file": ""},
		"missing file":  {"ca_file": filepath.Join(dir, "none.pem")},
		"no cert":       {"ca_file": junk},
	} {
		if cfg, err := OptionTLS(opts); !errors.Is(err, core.ErrInvalid) || cfg != nil {
			t.Errorf("%s: %v, %v; want ErrInvalid", name, cfg, err)
		}
	}
}
