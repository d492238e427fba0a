package rest_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

// tokenSource hands out stale until asked to refresh, then fresh.
type tokenSource struct {
	mu             sync.Mutex
	stale, fresh   string
	calls, refresh int
}

func (s *tokenSource) token(_ context.Context, refresh bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if refresh {
		s.refresh++
		s.stale = s.fresh
	}
	return s.stale, nil
}

func authOptions() *server.Options {
	return &server.Options{Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
		if tok != "good" {
			return core.Principal{}, core.ErrUnauthorized
		}
		return core.Principal{ID: "alice"}, nil
	}}
}

func TestClientRefreshesTokenOnceThenSucceeds(t *testing.T) {
	ts := &tokenSource{stale: "expired", fresh: "good"}
	s := newStack(t, authOptions(), &rest.Options{Token: ts.token})
	res := mustPush(t, s.client, upsert("a", "todo", "x", `{}`))
	if res[0].Status != core.StatusApplied {
		t.Fatalf("push: %+v", res[0])
	}
	if ts.refresh != 1 {
		t.Fatalf("refreshed %d times", ts.refresh)
	}
	if got := pullAll(t, s.client, "todo", core.Cursor{}, 10); len(got) != 1 {
		t.Fatalf("pulled %d", len(got))
	}
	if ts.refresh != 1 {
		t.Fatalf("refreshed %d times after a good token", ts.refresh)
	}
}

func TestClientTokenThatStaysInvalid(t *testing.T) {
	ts := &tokenSource{stale: "bad", fresh: "still-bad"}
	s := newStack(t, authOptions(), &rest.Options{Token: ts.token})
	ctx := context.Background()
	_, err := s.client.Push(ctx, []core.Op{upsert("a", "todo", "x", `{}`)})
	if !errors.Is(err, core.ErrUnauthorized) || !core.Retryable(err) {
		t.Fatalf("push: %v", err)
	}
	if ts.refresh != 1 {
		t.Fatalf("push refreshed %d times", ts.refresh)
	}
	if _, err := s.client.Pull(ctx, core.PullRequest{Kind: "todo"}); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("pull: %v", err)
	}
	if _, err := s.client.Get(ctx, "todo", "x"); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("get: %v", err)
	}
	if _, err := s.client.Subscribe(ctx, []string{"todo"}); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("subscribe: %v", err)
	}
	// No token at all is refused too, and nothing was written.
	anon := rest.NewClient(s.srv.URL, nil)
	if _, err := anon.Pull(ctx, core.PullRequest{Kind: "todo"}); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("anonymous pull: %v", err)
	}
	good := rest.NewClient(s.srv.URL, &rest.Options{Token: func(context.Context, bool) (string, error) { return "good", nil }})
	if got := pullAll(t, good, "todo", core.Cursor{}, 10); len(got) != 0 {
		t.Fatalf("written without auth: %+v", got)
	}
}

func TestClientTokenSourceError(t *testing.T) {
	s := newStack(t, authOptions(), &rest.Options{Token: func(context.Context, bool) (string, error) {
		return "", errors.New("vault sealed")
	}})
	if _, err := s.client.Pull(context.Background(), core.PullRequest{Kind: "todo"}); !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("pull: %v", err)
	}
}
