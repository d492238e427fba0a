package plugins

import (
	"context"
	"fmt"
	"time"

	"github.com/offsync/offsync/core"
)

func init() { core.RegisterResolver("plugin", openDriver) }

// openDriver is the resolver driver "plugin". Options: "path" (the binary,
// required), "sha256" (pin), "timeout" (per-call timeout) and
// "start_timeout", each a duration string ("5s"), a time.Duration or a number
// of seconds. The resolver it returns is a *Plugin: close it (io.Closer)
// when done.
func openDriver(ctx context.Context, opts map[string]any) (core.Resolver, error) {
	var o LoadOptions
	var path string
	for k, v := range opts {
		var err error
		switch k {
		case "path":
			path, err = stringOpt(k, v)
		case "sha256":
			o.SHA256, err = stringOpt(k, v)
		case "timeout":
			o.CallTimeout, err = durationOpt(k, v)
		case "start_timeout":
			o.StartTimeout, err = durationOpt(k, v)
		default:
			err = fmt.Errorf("%w: plugin resolver: unknown option %q (known: path, sha256, timeout, start_timeout)", core.ErrInvalid, k)
		}
		if err != nil {
			return nil, err
		}
	}
	if path == "" {
		return nil, fmt.Errorf("%w: plugin resolver: option \"path\" is required", core.ErrInvalid)
	}
	return Open(ctx, path, &o)
}

func stringOpt(k string, v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%w: plugin resolver: option %q must be a string, not %T", core.ErrInvalid, k, v)
	}
	return s, nil
}

func durationOpt(k string, v any) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case string:
		var err error
		if d, err = time.ParseDuration(x); err != nil {
			return 0, fmt.Errorf("%w: plugin resolver: option %q: %v", core.ErrInvalid, k, err)
		}
	case int:
		d = time.Duration(x) * time.Second
	case int64:
		d = time.Duration(x) * time.Second
	case uint64:
		d = time.Duration(x) * time.Second
	case float64:
		d = time.Duration(x * float64(time.Second))
	default:
		return 0, fmt.Errorf("%w: plugin resolver: option %q must be a duration, not %T", core.ErrInvalid, k, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%w: plugin resolver: option %q must be positive, got %s", core.ErrInvalid, k, d)
	}
	return d, nil
}
