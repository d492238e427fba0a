package server

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/offsync/offsync/core"
)

// ParseBearer returns the token of the Authorization values of a request (an
// HTTP header, gRPC metadata, a WebSocket or GraphQL auth message): "" when
// there are none, core.ErrUnauthorized when there are several or the one is
// not "Bearer <token>". Every server half parses its token here.
func ParseBearer(values []string) (string, error) {
	if len(values) == 0 {
		return "", nil
	}
	if len(values) > 1 {
		return "", fmt.Errorf("%w: more than one authorization value", core.ErrUnauthorized)
	}
	scheme, tok, _ := strings.Cut(values[0], " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", fmt.Errorf("%w: authorization must be `Bearer <token>`", core.ErrUnauthorized)
	}
	return tok, nil
}

// AdminRole is the value of the "role" attribute that makes a principal an
// administrator: it may read the operator's views (/metrics, /ui).
const AdminRole = "admin"

// IsAdmin reports whether p may read the operator's views: its "role"
// attribute is AdminRole.
func IsAdmin(p core.Principal) bool { return p.Attrs["role"] == AdminRole }

// AdminOnly serves h only to an administrator authenticated through t (a
// bearer token whose principal IsAdmin). Without a token, or with one that
// is refused, the answer is 401; with a token of another principal, 403; over
// the rate limit, 429 with Retry-After. An
// authority without tokens has no administrator, so an operator's view is
// never open by accident.
func AdminOnly(t core.Transport, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deny := func(status int, msg string) {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="offsync"`)
			}
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, msg, status)
		}
		a, ok := t.(core.Authenticator)
		if !ok {
			deny(http.StatusUnauthorized, "no administrator: the server has no tokens")
			return
		}
		tok, err := ParseBearer(r.Header.Values("Authorization"))
		if err != nil || tok == "" {
			deny(http.StatusUnauthorized, "an administrator's bearer token is required")
			return
		}
		p, err := a.Authenticate(r.Context(), tok)
		switch {
		case errors.Is(err, core.ErrRateLimited):
			secs := int(math.Ceil(RetryAfter(err).Seconds()))
			w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			deny(http.StatusTooManyRequests, "over the rate limit; retry later")
			return
		case errors.Is(err, core.ErrUnavailable):
			deny(http.StatusServiceUnavailable, "authentication is unavailable; retry later")
			return
		case err != nil:
			deny(http.StatusUnauthorized, "the token was refused")
			return
		case !IsAdmin(p):
			deny(http.StatusForbidden, "this principal is not an administrator")
			return
		}
		h.ServeHTTP(w, r.WithContext(core.WithPrincipal(r.Context(), p)))
	})
}
