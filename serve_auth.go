package offsync

import (
	"context"
	"log/slog"

	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// composeAuth completes opts.Authenticate (the static tokens of the config,
// or nil) with server.jwt and server.rate_limit: a bearer token that is a
// static token is its principal, any other is checked as a JWT; then, with
// a rate limit, the principal's bucket is charged. It reads a configured
// key set once now.
func composeAuth(ctx context.Context, cfg *config.Server, opts *server.Options, log *slog.Logger) error {
	static := opts.Authenticate
	if jo, ok := cfg.JWTOptions(); ok {
		jo.Logger = log
		a, err := server.NewJWT(ctx, jo)
		if err != nil {
			return cfg.Wrap("server.jwt", err)
		}
		opts.Authenticate = func(ctx context.Context, token string) (core.Principal, error) {
			if static != nil {
				if p, err := static(ctx, token); err == nil {
					return p, nil
				}
			}
			return a.Authenticate(ctx, token)
		}
	}
	if l, ok := cfg.RateLimitOptions(); ok {
		r, err := server.NewRateLimiter(l, nil)
		if err != nil {
			return cfg.Wrap("server.rate_limit", err)
		}
		opts.Authenticate = server.RateLimited(opts.Authenticate, r)
	}
	return nil
}
