package graphql_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/offsync/offsync/core"
	gql "github.com/offsync/offsync/drivers/transport/graphql"
	"github.com/offsync/offsync/server"
)

// tokens is a token source whose token "expires": the authority accepts
// only the newest one, and a refresh issues the next.
type tokens struct {
	mu       sync.Mutex
	gen      int
	valid    string
	asked    int
	refresh  int
	failNext bool // a refresh yields a token the authority refuses too
}

func (k *tokens) source(_ context.Context, refresh bool) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.asked++
	if refresh {
		k.refresh++
		k.gen++
		if !k.failNext {
			k.valid = fmt.Sprint("tok-", k.gen)
		}
	}
	return fmt.Sprint("tok-", k.gen), nil
}

func (k *tokens) authenticate(_ context.Context, tok string) (core.Principal, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if tok != k.valid {
		return core.Principal{}, fmt.Errorf("%w: expired", core.ErrUnauthorized)
	}
	return core.Principal{ID: "alice"}, nil
}

func (k *tokens) expire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.valid = "none"
}

// UNAUTHENTICATED makes the client ask its token source again (refresh)
// and send the call once more; a token that stays refused is
// core.ErrUnauthorized, after exactly one refresh.
func TestTokenRefreshedOnUnauthenticated(t *testing.T) {
	k := &tokens{valid: "tok-0"}
	svc := newAuthority(t, &server.Options{Authenticate: k.authenticate})
	l := serve(t, svc)
	c := newClient(t, l.URL(), &gql.Options{Token: k.source, Backoff: fastBackoff})
	ctx := testCtx(t)
	if _, err := c.Pull(ctx, core.PullRequest{Kind: "todo"}); err != nil || k.refresh != 0 {
		t.Fatalf("pull with a valid token: %v, %d refreshes", err, k.refresh)
	}
	k.expire()
	res, err := c.Push(ctx, []core.Op{{OpID: "o1", Kind: "todo", ID: "a", Type: core.OpUpsert, Payload: json.RawMessage(`{}`)}})
	if err != nil || res[0].Status != core.StatusApplied || k.refresh != 1 {
		t.Fatalf("push after expiry: %+v %v, %d refreshes (want 1)", res, err, k.refresh)
	}
	// The subscription socket: 4403 at connection_init, then a refresh.
	k.expire()
	ch, err := c.Subscribe(ctx, []string{"todo"})
	if err != nil || k.refresh != 2 {
		t.Fatalf("subscribe after expiry: %v, %d refreshes (want 2)", err, k.refresh)
	}
	_ = ch
	// A refresh that does not help: the call fails with ErrUnauthorized.
	k.expire()
	k.failNext = true
	_, err = c.Pull(ctx, core.PullRequest{Kind: "todo"})
	if !errors.Is(err, core.ErrUnauthorized) || k.refresh != 3 {
		t.Fatalf("pull with a refused token: %v, %d refreshes (want 3)", err, k.refresh)
	}
	_, err = c.Subscribe(ctx, []string{"todo"})
	if !errors.Is(err, core.ErrUnauthorized) || k.refresh != 4 {
		t.Fatalf("subscribe with a refused token: %v, %d refreshes (want 4)", err, k.refresh)
	}
}

// Errors are classified like the other clients': each code of the
// contract maps to its sentinel.
func TestClientErrorClasses(t *testing.T) {
	svc := newAuthority(t, &server.Options{MaxBatch: 2})
	l := serve(t, svc)
	c := newClient(t, l.URL(), nil)
	ctx := testCtx(t)
	if _, err := c.Pull(ctx, core.PullRequest{Kind: "Bad Kind"}); !errors.Is(err, core.ErrUnknownKind) {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := c.Pull(ctx, core.PullRequest{Kind: "todo", PageToken: "forged"}); !errors.Is(err, core.ErrBadCursor) {
		t.Errorf("forged token: %v", err)
	}
	if _, err := c.Get(ctx, "todo", "missing"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("missing record: %v", err)
	}
	dead := newClient(t, "http://127.0.0.1:1/graphql", nil)
	if _, err := dead.Pull(ctx, core.PullRequest{Kind: "todo"}); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("no server: %v", err)
	}
	// A batch over the authority's limit is split by the client (BatchLimits).
	ops := make([]core.Op, 5)
	for i := range ops {
		ops[i] = core.Op{OpID: fmt.Sprint("b", i), Kind: "todo", ID: fmt.Sprint("b", i), Type: core.OpUpsert, Payload: json.RawMessage(`{"n":1}`)}
	}
	ops[3].Payload = json.RawMessage(`[1]`) // rejected locally, the rest go through
	res, err := c.Push(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		want := core.StatusApplied
		if i == 3 {
			want = core.StatusRejected
		}
		if r.Status != want {
			t.Errorf("op %d: %v, want %v", i, r.Status, want)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, core.PullRequest{Kind: "todo"}); !errors.Is(err, core.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}
