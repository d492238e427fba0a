package rest

import (
	"context"
	"fmt"
	"net/url"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
)

func init() {
	core.RegisterTransport("rest", open)
	server.RegisterTransport("rest", server.TransportDriver{Open: openServer, Path: "/", Rank: 0})
}

// open is the "rest" driver's opener: options token, timeout, and ca_file
// or tls (the CA an https URL trusts).
func open(_ context.Context, rawURL string, opts map[string]any) (core.Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rest: %w: url %q must be http(s)://host[/prefix]", core.ErrInvalid, rawURL)
	}
	var o Options
	tlsCfg, err := wire.OptionTLS(opts)
	if err != nil {
		return nil, fmt.Errorf("rest: %w", err)
	}
	o.TLS = tlsCfg
	for k, v := range opts {
		switch k {
		case "tls", "ca_file": // read above
		case "token":
			tok, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("rest: %w: option token must be a string, got %T", core.ErrInvalid, v)
			}
			if tok != "" {
				o.Token = func(context.Context, bool) (string, error) { return tok, nil }
			}
		case "timeout":
			d, err := wire.OptionDuration(v)
			if err != nil {
				return nil, fmt.Errorf("rest: option timeout: %w", err)
			}
			o.Timeout = d
		default:
			return nil, fmt.Errorf("rest: %w: unknown option %q (known: ca_file, timeout, tls, token)", core.ErrInvalid, k)
		}
	}
	return NewClient(rawURL, &o), nil
}
