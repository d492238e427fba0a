package grpc

import (
	"context"
	"fmt"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
)

func init() {
	core.RegisterTransport("grpc", open)
	server.RegisterTransport("grpc", server.TransportDriver{Open: openServer, Addr: "+1", Rank: 30})
}

// open is the "grpc" client opener: grpc://host:port or grpcs://host:port,
// options token (string), timeout (a duration or seconds), and ca_file (a
// PEM file) or tls (a *tls.Config): the CA a grpcs URL trusts.
func open(_ context.Context, rawURL string, opts map[string]any) (core.Transport, error) {
	var o Options
	tlsCfg, err := wire.OptionTLS(opts)
	if err != nil {
		return nil, fmt.Errorf("grpc: %w", err)
	}
	o.TLS = tlsCfg
	for k, v := range opts {
		switch k {
		case "tls", "ca_file": // read above
		case "token":
			tok, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("grpc: %w: option token must be a string, got %T", core.ErrInvalid, v)
			}
			o.Token = wire.StaticToken(tok)
		case "timeout":
			d, err := wire.OptionDuration(v)
			if err != nil {
				return nil, fmt.Errorf("grpc: option timeout: %w", err)
			}
			o.Timeout = d
		default:
			return nil, fmt.Errorf("grpc: %w: unknown option %q (known: ca_file, timeout, tls, token)", core.ErrInvalid, k)
		}
	}
	return NewClient(rawURL, &o)
}
