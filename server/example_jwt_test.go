package server_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// A JWT authenticator with a shared HS256 secret: the principal comes from
// "sub", its role from the "role" claim, and it carries its expiry.
func ExampleNewJWT() {
	ctx := context.Background()
	secret := []byte("0123456789abcdef0123456789abcdef")
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	auth, err := server.NewJWT(ctx, server.JWTOptions{
		HS256Secret: secret,
		Issuer:      "https://idp.example.com",
		Audience:    "offsync",
		Attrs:       map[string]string{"role": "role"},
		Now:         func() time.Time { return now },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	sign := func(c jwt.MapClaims) string {
		s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
		return s
	}
	good := sign(jwt.MapClaims{"sub": "alice", "role": "admin", "iss": "https://idp.example.com",
		"aud": "offsync", "exp": now.Add(time.Hour).Unix()})
	p, err := auth.Authenticate(ctx, good)
	exp, _ := server.PrincipalExpiry(p)
	fmt.Println(p.ID, p.Attrs["role"], server.IsAdmin(p), exp.UTC().Format(time.RFC3339), err)

	expired := sign(jwt.MapClaims{"sub": "alice", "iss": "https://idp.example.com",
		"aud": "offsync", "exp": now.Add(-time.Hour).Unix()})
	_, err = auth.Authenticate(ctx, expired)
	fmt.Println(errors.Is(err, core.ErrUnauthorized))
	// Output:
	// alice admin true 2030-01-01T13:00:00Z <nil>
	// true
}

// A per-principal rate limit wrapped around an authenticate function: the
// third request of a burst of two is refused, with when to retry.
func ExampleRateLimited() {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	limiter, _ := server.NewRateLimiter(server.RateLimit{PerSecond: 4, Burst: 2}, func() time.Time { return now })
	auth := server.RateLimited(func(_ context.Context, token string) (core.Principal, error) {
		return core.Principal{ID: token}, nil
	}, limiter)
	for range 3 {
		_, err := auth(context.Background(), "alice")
		fmt.Println(errors.Is(err, core.ErrRateLimited), server.RetryAfter(err))
	}
	// Output:
	// false 0s
	// false 0s
	// true 250ms
}
