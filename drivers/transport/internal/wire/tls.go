package wire

import (
	"crypto/tls"
	"fmt"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/tlsca"
)

// IsTLSOption reports whether key is a client opener option OptionTLS
// reads: "tls", a *tls.Config used as it is, or "ca_file", a PEM file of
// the certificates to trust in place of the system's roots.
func IsTLSOption(key string) bool { return key == "ca_file" || key == "tls" }

// OptionTLS reads the TLS options of a client opener: nil when neither is
// set (the system's roots), the "tls" config as it is, or a config trusting
// only the certificates of "ca_file". Setting both, a value of the wrong
// type, or a file that cannot be read or holds no certificate wraps
// core.ErrInvalid.
func OptionTLS(opts map[string]any) (*tls.Config, error) {
	tv, hasTLS := opts["tls"]
	fv, hasFile := opts["ca_file"]
	if hasTLS && hasFile {
		return nil, fmt.Errorf("%w: set one of the options tls and ca_file, not both", core.ErrInvalid)
	}
	if hasTLS {
		cfg, ok := tv.(*tls.Config)
		if !ok || cfg == nil {
			return nil, fmt.Errorf("%w: option tls must be a *tls.Config, got %T", core.ErrInvalid, tv)
		}
		return cfg, nil
	}
	if !hasFile {
		return nil, nil
	}
	file, ok := fv.(string)
	if !ok || file == "" {
		return nil, fmt.Errorf("%w: option ca_file must be the path of a PEM file, got %T %v", core.ErrInvalid, fv, fv)
	}
	return tlsca.Config(file)
}
