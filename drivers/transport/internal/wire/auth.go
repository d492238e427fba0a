package wire

import (
	"context"
	"errors"
	"fmt"

	"github.com/offsync/offsync/core"
)

// TokenSource returns the bearer token a client sends. refresh is true when
// the authority refused the last token: the source should fetch a new one.
// A source whose error wraps core.ErrUnavailable makes the call retry later;
// any other error is core.ErrUnauthorized.
type TokenSource func(ctx context.Context, refresh bool) (string, error)

// StaticToken is a TokenSource that always returns tok (nil for "").
func StaticToken(tok string) TokenSource {
	if tok == "" {
		return nil
	}
	return func(context.Context, bool) (string, error) { return tok, nil }
}

// Token asks src for a token, classifying its failure. A nil source is "".
func Token(ctx context.Context, prefix string, src TokenSource, refresh bool) (string, error) {
	if src == nil {
		return "", nil
	}
	tok, err := src(ctx, refresh)
	if err != nil {
		if errors.Is(err, core.ErrUnavailable) || errors.Is(err, core.ErrUnauthorized) || errors.Is(err, core.ErrForbidden) {
			return "", fmt.Errorf("%s: token: %w", prefix, err)
		}
		return "", fmt.Errorf("%s: token: %w: %v", prefix, core.ErrUnauthorized, err)
	}
	return tok, nil
}
