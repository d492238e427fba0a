package tlsca

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/offsync/offsync/core"
)

// Config returns a client TLS config that trusts the certificates of the
// PEM file (and no other root). A file that cannot be read or holds no
// certificate wraps core.ErrInvalid.
func Config(file string) (*tls.Config, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: ca_file: %v", core.ErrInvalid, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: ca_file %s holds no PEM certificate", core.ErrInvalid, file)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
