package rest

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

func init() {
	core.RegisterTransport("rest", open)
	server.RegisterTransport("rest", server.TransportDriver{Open: openServer, Path: "/", Rank: 0})
}

// open is the "rest" driver's opener.
func open(_ context.Context, rawURL string, opts map[string]any) (core.Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("rest: %w: url %q must be http(s)://host[/prefix]", core.ErrInvalid, rawURL)
	}
	var o Options
	for k, v := range opts {
		switch k {
		case "token":
			tok, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("rest: %w: option token must be a string, got %T", core.ErrInvalid, v)
			}
			if tok != "" {
				o.Token = func(context.Context, bool) (string, error) { return tok, nil }
			}
		case "timeout":
			d, err := duration(v)
			if err != nil {
				return nil, fmt.Errorf("rest: option timeout: %w", err)
			}
			o.Timeout = d
		default:
			return nil, fmt.Errorf("rest: %w: unknown option %q (known: token, timeout)", core.ErrInvalid, k)
		}
	}
	return NewClient(rawURL, &o), nil
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
	case int:
		d = time.Duration(x) * time.Second
	case int64:
		d = time.Duration(x) * time.Second
	case uint64:
		d = time.Duration(x) * time.Second
	case float64:
		d = time.Duration(x * float64(time.Second))
	default:
		return 0, fmt.Errorf("%w: want a duration like \"10s\" or seconds, got %T", core.ErrInvalid, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%w: must be positive, got %v", core.ErrInvalid, d)
	}
	return d, nil
}
