package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/offsync/offsync/core"
)

// ExpiryAttr is the principal attribute that holds when its credentials
// expire, in Unix milliseconds. An authenticator whose tokens expire (JWT)
// sets it; read it with PrincipalExpiry. A principal without it never
// expires (static tokens).
const ExpiryAttr = "offsync.expires_at"

// ErrTokenExpired is the cause of a stream context (StreamContext) that
// ended because the caller's token expired. It wraps core.ErrUnauthorized:
// each wire form ends such a stream with its unauthorized code, and the
// client asks its token source for a new token.
var ErrTokenExpired = fmt.Errorf("%w: the token expired", core.ErrUnauthorized)

// PrincipalExpiry returns when p's credentials expire; ok is false when
// they do not (or the attribute is not a number).
func PrincipalExpiry(p core.Principal) (t time.Time, ok bool) {
	v, found := p.Attrs[ExpiryAttr]
	if !found {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// StreamContext is the one place where a long-lived stream meets its
// caller's expiry: it returns a context derived from ctx that also ends
// when the principal in ctx (core.PrincipalFrom) expires, with cause
// ErrTokenExpired. Every server half runs its streams (a socket, a
// subscription, an event stream) under it and, when the stream ends,
// asks Expired whether to answer with its wire's unauthorized code. A
// principal without an expiry gives a context that ends only with ctx.
// Call cancel when the stream ends.
func StreamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	p, _ := core.PrincipalFrom(ctx)
	exp, ok := PrincipalExpiry(p)
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadlineCause(ctx, exp, ErrTokenExpired)
}

// Expired reports whether the stream context ctx (from StreamContext)
// ended because the caller's token expired.
func Expired(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrTokenExpired)
}
