package contract_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsync/offsync/conformance/contract"
	"github.com/offsync/offsync/conformance/contract/defects"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

// newServer serves the reference authority over REST, with tokens one and
// two scoped to their own notes, through wrap.
func newServer(t *testing.T, wrap func(http.Handler) http.Handler) string {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "auth.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := server.New(context.Background(), st, &server.Options{
		Tables: []core.Table{core.Documents("conformance")},
		Authenticate: func(ctx context.Context, token string) (core.Principal, error) {
			if token == "one" || token == "two" {
				return core.Principal{ID: token}, nil
			}
			return core.Principal{}, core.ErrUnauthorized
		},
		Scope: func(ctx context.Context, p core.Principal, kind string) (*core.Filter, error) {
			return &core.Filter{Field: "owner", Values: []string{p.ID}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	var h http.Handler = rest.NewHandler(svc, nil)
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func run(t *testing.T, cfg contract.Config) []contract.Result {
	t.Helper()
	res, err := contract.Run(t.Context(), cfg, func(r contract.Result) { t.Log(r) })
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestPassesAgainstReferenceServer(t *testing.T) {
	res := run(t, contract.Config{URL: newServer(t, nil), Token: "one", Token2: "two"})
	for _, r := range res {
		if r.Status != contract.Pass {
			t.Errorf("%s", r)
		}
	}
}

func TestSkipsScopeWithoutSecondToken(t *testing.T) {
	res := run(t, contract.Config{URL: newServer(t, nil), Token: "one"})
	for _, r := range res {
		switch {
		case r.Name == "scope-invisibility" && r.Status != contract.Skip:
			t.Errorf("without a second token: %s", r)
		case r.Status == contract.Fail:
			t.Errorf("%s", r)
		}
	}
}

func TestFailsAgainstDefectiveServers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wrap  func(http.Handler) http.Handler
		check string
		want  string
	}{
		{"offset tokens", defects.OffsetTokens, "keyset-paging-with-writes", "must be keyset positions, not offsets"},
		{"second timestamps", defects.SecondTimestamps, "microsecond-timestamps", "has no microseconds"},
		{"cached 409", defects.Caching409, "forced-retry-after-409", "keeps the 409 under the idempotency key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, contract.Config{URL: newServer(t, tc.wrap), Token: "one", Token2: "two"})
			if contract.Failed(res) == 0 {
				t.Fatal("every check passed")
			}
			for _, r := range res {
				if r.Name == tc.check {
					if r.Status != contract.Fail || !strings.Contains(r.Detail, tc.want) {
						t.Errorf("%s, want FAIL saying %q", r, tc.want)
					}
					return
				}
			}
			t.Errorf("no check %s", tc.check)
		})
	}
}

func TestBadConfig(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://"} {
		if _, err := contract.Run(t.Context(), contract.Config{URL: u}, nil); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("url %q: no error", u)
		}
	}
	if _, err := contract.Run(t.Context(), contract.Config{URL: "http://x", Kind: "Bad Kind"}, nil); !errors.Is(err, core.ErrInvalid) {
		t.Error("bad kind: no error")
	}
}

func TestUnreachableServerFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res := run(t, contract.Config{URL: url})
	if contract.Failed(res) != len(res)-1 { // only the scope check skips
		t.Errorf("%d of %d checks failed against a closed port", contract.Failed(res), len(res))
	}
}
