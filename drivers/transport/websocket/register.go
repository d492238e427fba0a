package websocket

import (
	"context"
	"fmt"
	"net/url"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
)

func init() {
	core.RegisterTransport("websocket", open)
	server.RegisterTransport("websocket", server.TransportDriver{Open: openServer, Path: "/ws", Rank: 10})
}

// open is the "websocket" client opener: ws://host:port/ws or wss://...,
// with the options "token" (a static bearer token), "timeout" (a
// duration string such as "10s", or a number of seconds), and "ca_file" (a
// PEM file) or "tls" (a *tls.Config): the CA a wss URL trusts.
func open(_ context.Context, rawURL string, opts map[string]any) (core.Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("websocket: %w: url %q must be ws(s)://host[:port]/path (e.g. ws://127.0.0.1:8080/ws)", core.ErrInvalid, rawURL)
	}
	var o Options
	tlsCfg, err := wire.OptionTLS(opts)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	o.TLS = tlsCfg
	for k, v := range opts {
		switch k {
		case "tls", "ca_file": // read above
		case "token":
			tok, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("websocket: %w: option token must be a string, got %T", core.ErrInvalid, v)
			}
			o.Token = wire.StaticToken(tok)
		case "timeout":
			d, err := wire.OptionDuration(v)
			if err != nil {
				return nil, fmt.Errorf("websocket: option timeout: %w", err)
			}
			o.Timeout = d
		default:
			return nil, fmt.Errorf("websocket: %w: unknown option %q (known: ca_file, timeout, tls, token)", core.ErrInvalid, k)
		}
	}
	return NewClient(rawURL, &o), nil
}
