package graphql

import (
	"context"
	"fmt"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
)

func init() {
	server.RegisterTransport("graphql", server.TransportDriver{Open: openServer, Path: "/graphql", Rank: 20})
	core.RegisterTransport("graphql", open)
}

// open is the "graphql" client opener: url is http(s)://host:port/graphql;
// options token (string), timeout (a duration or seconds), page_size, and
// ca_file (a PEM file) or tls (a *tls.Config): the CA an https URL trusts.
func open(_ context.Context, rawURL string, opts map[string]any) (core.Transport, error) {
	var o Options
	tlsCfg, err := wire.OptionTLS(opts)
	if err != nil {
		return nil, fmt.Errorf("graphql: %w", err)
	}
	o.TLS = tlsCfg
	for k, v := range opts {
		switch k {
		case "tls", "ca_file": // read above
		case "token":
			tok, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("graphql: %w: option token must be a string, got %T", core.ErrInvalid, v)
			}
			o.Token = wire.StaticToken(tok)
		case "timeout":
			d, err := duration(v)
			if err != nil {
				return nil, fmt.Errorf("graphql: option timeout: %w", err)
			}
			o.Timeout = d
		case "page_size":
			n, ok := intOption(v)
			if !ok || n <= 0 {
				return nil, fmt.Errorf("graphql: %w: option page_size must be a positive integer, got %v", core.ErrInvalid, v)
			}
			o.PageSize = n
		default:
			return nil, fmt.Errorf("graphql: %w: unknown option %q (known: ca_file, page_size, timeout, tls, token)", core.ErrInvalid, k)
		}
	}
	return NewClient(rawURL, &o)
}

func duration(v any) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", core.ErrInvalid, err)
		}
		d = p
	default:
		n, ok := intOption(v)
		if !ok {
			if f, isF := v.(float64); isF {
				d = time.Duration(f * float64(time.Second))
				break
			}
			return 0, fmt.Errorf("%w: want a duration like \"10s\" or seconds, got %T", core.ErrInvalid, v)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return 0, fmt.Errorf("%w: must be positive, got %v", core.ErrInvalid, d)
	}
	return d, nil
}
