package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

func TestRateLimiter(t *testing.T) {
	clk := &testClock{t: jwtEpoch}
	rl, err := server.NewRateLimiter(server.RateLimit{PerSecond: 2, Burst: 3}, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := rl.Admit("alice"); err != nil {
			t.Fatalf("request %d within the burst: %v", i, err)
		}
	}
	err = rl.Admit("alice")
	if !errors.Is(err, core.ErrRateLimited) || !errors.Is(err, core.ErrUnavailable) || !core.Retryable(err) {
		t.Fatalf("beyond the burst: %v", err)
	}
	if got := server.RetryAfter(err); got != 500*time.Millisecond {
		t.Fatalf("RetryAfter = %v, want 500ms (one token at 2/s)", got)
	}
	if err := rl.Admit("bob"); err != nil {
		t.Fatalf("another principal has its own bucket: %v", err)
	}
	clk.Add(500 * time.Millisecond)
	if err := rl.Admit("alice"); err != nil {
		t.Fatalf("after Retry-After: %v", err)
	}
	if err := rl.Admit("alice"); err == nil {
		t.Fatal("the bucket refilled more than the elapsed time allows")
	}
	for _, l := range []server.RateLimit{{}, {PerSecond: 1}, {Burst: 1}, {PerSecond: -1, Burst: 1}} {
		if _, err := server.NewRateLimiter(l, nil); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%+v: %v", l, err)
		}
	}
}

func TestRateLimitedAuthenticate(t *testing.T) {
	ctx := context.Background()
	clk := &testClock{t: jwtEpoch}
	rl, _ := server.NewRateLimiter(server.RateLimit{PerSecond: 1, Burst: 1}, clk.Now)
	auth := server.RateLimited(func(_ context.Context, tok string) (core.Principal, error) {
		if tok == "good" {
			return core.Principal{ID: "alice"}, nil
		}
		return core.Principal{}, fmt.Errorf("%w: unknown token", core.ErrUnauthorized)
	}, rl)
	svc, _ := newService(t, &server.Options{Authenticate: auth})
	if _, err := svc.Authenticate(ctx, "bad"); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("a refused token: %v", err)
	}
	if _, err := svc.Authenticate(ctx, "good"); err != nil {
		t.Fatalf("a refused token took the bucket's token: %v", err)
	}
	_, err := svc.Authenticate(ctx, "good")
	if !errors.Is(err, core.ErrRateLimited) || server.RetryAfter(err) != time.Second {
		t.Fatalf("the second request: %v (retry after %v)", err, server.RetryAfter(err))
	}
}
