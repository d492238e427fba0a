package rest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/rest"
)

// scripted is a tiny in-test authority: it answers from fixed rules, so
// the handler's and the client's mapping of every answer can be checked.
type scripted struct {
	pullErr error
	getErr  error
	pushErr map[string]error           // by record id
	answer  map[string]core.PushResult // by record id
}

func (s *scripted) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	if s.pullErr != nil {
		return core.Page{}, s.pullErr
	}
	return core.Page{Remaining: -1}, nil
}

func (s *scripted) Get(ctx context.Context, kind, id string) (core.Record, error) {
	return core.Record{}, s.getErr
}

func (s *scripted) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	out := make([]core.PushResult, len(ops))
	for i, op := range ops {
		if err := s.pushErr[op.ID]; err != nil {
			return nil, err
		}
		if a, ok := s.answer[op.ID]; ok {
			a.OpID = op.OpID
			out[i] = a
			continue
		}
		rec := core.Record{Kind: op.Kind, ID: op.ID, UpdatedAt: time.Unix(100, 1000), Data: op.Payload}
		out[i] = core.PushResult{OpID: op.OpID, Status: core.StatusApplied, Record: &rec}
	}
	return out, nil
}

func TestClientErrorClassification(t *testing.T) {
	cases := []struct {
		err  error
		want error
	}{
		{core.ErrResetRequired, core.ErrResetRequired},
		{core.ErrBadCursor, core.ErrBadCursor},
		{core.ErrUnavailable, core.ErrUnavailable},
		{core.ErrForbidden, core.ErrForbidden},
		{core.ErrUnauthorized, core.ErrUnauthorized},
		{core.ErrTooLarge, core.ErrTooLarge},
		{core.ErrUnknownKind, core.ErrUnknownKind},
		{core.ErrInvalid, core.ErrInvalid},
		{errors.New("disk on fire"), core.ErrUnavailable}, // 500
	}
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			srv, _ := serve(t, rest.NewHandler(&scripted{pullErr: fmt.Errorf("x: %w", tc.err)}, nil))
			c := rest.NewClient(srv.URL, nil)
			req := core.PullRequest{Kind: "todo"}
			if tc.want == core.ErrBadCursor {
				req.PageToken = "t"
			}
			_, err := c.Pull(context.Background(), req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	srv, _ := serve(t, rest.NewHandler(&scripted{getErr: core.ErrNotFound}, nil))
	if _, err := rest.NewClient(srv.URL, nil).Get(context.Background(), "todo", "x"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("get: %v", err)
	}
}

func TestClientNetworkErrorIsUnavailable(t *testing.T) {
	srv := httptest.NewServer(rest.NewHandler(&scripted{}, nil))
	url := srv.URL
	srv.Close()
	c := rest.NewClient(url, nil)
	ctx := context.Background()
	if _, err := c.Pull(ctx, core.PullRequest{Kind: "todo"}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("pull: %v", err)
	}
	if _, err := c.Push(ctx, []core.Op{upsert("a", "todo", "x", `{}`)}); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("push: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Get(cctx, "todo", "x"); !errors.Is(err, core.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled get: %v", err)
	}
}

// Per op (no /health) and batched, a retry-later answer after some ops
// were answered makes the rest StatusRetry; before any, Push fails.
func TestClientPushRetryLater(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprint("batched=", batched), func(t *testing.T) {
			auth := &scripted{pushErr: map[string]error{"boom": fmt.Errorf("db: %w", core.ErrUnavailable)}}
			h := rest.NewHandler(auth, &rest.HandlerOptions{MaxBatch: 1, RetryAfter: 7 * time.Second})
			if !batched {
				h = hideHealth(h)
			}
			srv, _ := serve(t, h)
			c := rest.NewClient(srv.URL, nil)
			ctx := context.Background()
			_, err := c.Push(ctx, []core.Op{upsert("1", "todo", "boom", `{}`), upsert("2", "todo", "y", `{}`)})
			if !errors.Is(err, core.ErrUnavailable) {
				t.Fatalf("nothing answered: %v", err)
			}
			res := mustPush(t, c, upsert("1", "todo", "x", `{}`), upsert("2", "todo", "boom", `{}`), upsert("3", "todo", "y", `{}`))
			if res[0].Status != core.StatusApplied || res[1].Status != core.StatusRetry || res[2].Status != core.StatusRetry {
				t.Fatalf("results: %+v", res)
			}
			if res[1].RetryAfter != 7*time.Second || res[1].OpID != "2" || res[2].OpID != "3" {
				t.Fatalf("retry: %+v", res[1:])
			}
		})
	}
}

func TestClientPushAnswerMapping(t *testing.T) {
	cur := core.Record{Kind: "todo", ID: "c", UpdatedAt: time.Unix(5, 0), Data: []byte(`{"v":1}`)}
	auth := &scripted{answer: map[string]core.PushResult{
		"c":    {Status: core.StatusConflict, Record: &cur},
		"nf":   {Status: core.StatusNotFound},
		"rej":  {Status: core.StatusRejected, Permanent: true, Reason: "title required"},
		"soft": {Status: core.StatusRejected, Permanent: false, Reason: "quota"},
		"skip": {Status: core.StatusSkipped},
		"wait": {Status: core.StatusRetry, RetryAfter: 3 * time.Second, Reason: "busy"},
	}}
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprint("batched=", batched), func(t *testing.T) {
			var h = rest.NewHandler(auth, nil)
			if !batched {
				h = hideHealth(h)
			}
			srv, _ := serve(t, h)
			c := rest.NewClient(srv.URL, nil)
			ids := []string{"c", "nf", "rej", "soft", "skip", "wait", "ok"}
			var ops []core.Op
			for _, id := range ids {
				ops = append(ops, upsert("op-"+id, "todo", id, `{"a":1}`))
			}
			ops = append(ops, upsert("bad", "todo", "bad", `[1]`))
			res := mustPush(t, c, ops...)
			check := func(i int, st core.PushStatus) {
				t.Helper()
				if res[i].Status != st || res[i].OpID != ops[i].OpID {
					t.Fatalf("%s: %+v", ops[i].ID, res[i])
				}
			}
			check(0, core.StatusConflict)
			if res[0].Record == nil || !res[0].Record.UpdatedAt.Equal(cur.UpdatedAt) {
				t.Fatalf("conflict current: %+v", res[0].Record)
			}
			check(1, core.StatusNotFound)
			check(2, core.StatusRejected)
			if !res[2].Permanent || res[2].Reason == "" {
				t.Fatalf("rejected: %+v", res[2])
			}
			check(3, core.StatusRejected)
			if res[3].Permanent {
				t.Fatalf("soft rejection became permanent: %+v", res[3])
			}
			check(4, core.StatusSkipped)
			check(5, core.StatusRetry)
			if res[5].RetryAfter != 3*time.Second {
				t.Fatalf("retry after: %+v", res[5])
			}
			if !batched {
				// One request per op: a 503 cannot be told from a server
				// failure, so the rest wait too.
				check(6, core.StatusRetry)
				check(7, core.StatusRetry)
				return
			}
			check(6, core.StatusApplied)
			check(7, core.StatusRejected) // not a JSON object: refused without a round trip
		})
	}
}
