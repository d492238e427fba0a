package contract_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/conformance/contract"
	"github.com/offsync/offsync/conformance/contract/defects"
	"github.com/offsync/offsync/core"
)

// restOpener opens the registered REST client to url, as the principal of
// the token it is given, through wrap.
func restOpener(url string, wrap func(core.Transport) core.Transport) func(context.Context, string) (core.Transport, error) {
	return func(ctx context.Context, token string) (core.Transport, error) {
		tr, err := core.OpenTransport(ctx, "rest", url, map[string]any{"token": token})
		if err != nil || wrap == nil {
			return tr, err
		}
		return wrap(tr), nil
	}
}

func runClient(t *testing.T, cfg contract.ClientConfig) []contract.Result {
	t.Helper()
	res, err := contract.RunClient(t.Context(), cfg, func(r contract.Result) { t.Log(r) })
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func result(t *testing.T, res []contract.Result, name string) contract.Result {
	t.Helper()
	for _, r := range res {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no check %s", name)
	return contract.Result{}
}

func TestRunClientPassesOverREST(t *testing.T) {
	url := newServer(t, nil)
	res := runClient(t, contract.ClientConfig{Open: restOpener(url, nil), Token: "one", Token2: "two"})
	for _, r := range res {
		if r.Status != contract.Pass {
			t.Errorf("%s", r)
		}
	}
	if len(res) < 15 {
		t.Errorf("%d checks, want every check of the list", len(res))
	}
}

func TestRunClientSkipsScopeWithoutSecondToken(t *testing.T) {
	res := runClient(t, contract.ClientConfig{Open: restOpener(newServer(t, nil), nil), Token: "one"})
	for _, r := range res {
		switch {
		case r.Name == "scope-invisibility" && r.Status != contract.Skip:
			t.Errorf("without a second token: %s", r)
		case r.Status == contract.Fail:
			t.Errorf("%s", r)
		}
	}
}

// pullPush hides every upgrade of a transport.
type pullPush struct{ core.Transport }

func TestRunClientSkipsMissingUpgrades(t *testing.T) {
	wrap := func(tr core.Transport) core.Transport { return pullPush{tr} }
	res := runClient(t, contract.ClientConfig{Open: restOpener(newServer(t, nil), wrap), Token: "one", Token2: "two"})
	for _, r := range res {
		switch r.Name {
		case "get", "subscribe", "batch-limits":
			if r.Status != contract.Skip {
				t.Errorf("without the upgrade: %s, want SKIP", r)
			}
		default:
			if r.Status != contract.Pass {
				t.Errorf("%s", r)
			}
		}
	}
}

func TestRunClientFailsAgainstDefectiveTransports(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wrap  func(core.Transport) core.Transport
		check string
		want  string
	}{
		{"fresh OpID per send", func(tr core.Transport) core.Transport { return defects.FreshOpIDs(tr) },
			"idempotent-replay", "sent again answered conflict"},
		{"reversed pages", func(tr core.Transport) core.Transport { return defects.ReversedPages(tr) },
			"keyset-paging-with-writes", "strictly ordered by (UpdatedAt, ID)"},
		{"conflicts kept under the OpID", func(tr core.Transport) core.Transport { return defects.CachedConflicts(tr) },
			"forced-retry-after-conflict", "answered conflict again"},
		{"silent subscriptions", defects.SilentSubscribe,
			"subscribe", "no notice for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runClient(t, contract.ClientConfig{Open: restOpener(newServer(t, nil), tc.wrap), Token: "one", Token2: "two",
				NoticeTimeout: 300 * time.Millisecond})
			if r := result(t, res, tc.check); r.Status != contract.Fail || !strings.Contains(r.Detail, tc.want) {
				t.Errorf("%s, want FAIL saying %q", r, tc.want)
			}
		})
	}
}

func TestRunClientFailsWhenPrincipalsLeak(t *testing.T) {
	url := newServer(t, nil)
	// Every client is opened as the first principal, whatever token it is given.
	leaky := func(ctx context.Context, _ string) (core.Transport, error) {
		return core.OpenTransport(ctx, "rest", url, map[string]any{"token": "one"})
	}
	res := runClient(t, contract.ClientConfig{Open: leaky, Token: "one", Token2: "two"})
	r := result(t, res, "scope-invisibility")
	if r.Status != contract.Fail || !strings.Contains(r.Detail, "second token") {
		t.Errorf("%s, want FAIL", r)
	}
	if contract.Failed(res) != 1 {
		t.Errorf("%d checks failed, want only scope-invisibility", contract.Failed(res))
	}
}

func TestRunClientUnreachableServerFails(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res := runClient(t, contract.ClientConfig{Open: restOpener(url, nil), Token: "one"})
	for _, r := range res {
		if r.Name != "client-upgrades" && r.Name != "scope-invisibility" && r.Status != contract.Fail {
			t.Errorf("against a closed port: %s", r)
		}
	}
}

func TestRunClientBadConfig(t *testing.T) {
	open := restOpener("http://127.0.0.1:1", nil)
	for _, cfg := range []contract.ClientConfig{
		{},
		{Open: open, Kind: "Bad Kind"},
		{Open: open, UnknownKind: "Bad Kind"},
		{Open: restOpener("ftp://x", nil)},
	} {
		if _, err := contract.RunClient(t.Context(), cfg, nil); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%+v: %v, want core.ErrInvalid", cfg, err)
		}
	}
}
