package grpc_test

import (
	"context"
	"testing"

	"github.com/offsync/offsync/conformance/contract"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// TestContractChecks runs the black-box checks of `offsync conformance
// --transport grpc --url grpc://...` (contract.RunClient through the
// registered client, opened by URL) against the server half, with two
// principals scoped to their own rows.
func TestContractChecks(t *testing.T) {
	svc := newAuthority(t, &server.Options{
		Tables: []core.Table{core.Documents("conformance")},
		Authenticate: func(_ context.Context, token string) (core.Principal, error) {
			if token == "one" || token == "two" {
				return core.Principal{ID: token}, nil
			}
			return core.Principal{}, core.ErrUnauthorized
		},
		Scope: func(_ context.Context, p core.Principal, _ string) (*core.Filter, error) {
			return &core.Filter{Field: "owner", Values: []string{p.ID}}, nil
		},
	})
	r := serve(t, svc, server.TransportConfig{})
	res, err := contract.RunClient(t.Context(), contract.ClientConfig{
		Open: func(ctx context.Context, token string) (core.Transport, error) {
			return core.OpenTransport(ctx, "grpc", "grpc://"+r.addr, map[string]any{"token": token})
		},
		Token: "one", Token2: "two",
	}, func(r contract.Result) { t.Log(r) })
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != contract.Pass {
			t.Errorf("%s", r)
		}
	}
	if len(res) < 15 {
		t.Errorf("%d checks, want every check of the list", len(res))
	}
}
