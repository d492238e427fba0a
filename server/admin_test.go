package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

func TestAdminOnly(t *testing.T) {
	tokens := map[string]core.Principal{
		"root":  {ID: "ops", Attrs: map[string]string{"role": server.AdminRole}},
		"alice": {ID: "alice"},
	}
	svc, _ := newService(t, &server.Options{
		Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
			if p, ok := tokens[tok]; ok {
				return p, nil
			}
			return core.Principal{}, fmt.Errorf("%w: unknown token", core.ErrUnauthorized)
		},
	})
	open, _ := newService(t, nil) // no tokens: nobody is an administrator

	secret := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := core.PrincipalFrom(r.Context())
		_, _ = io.WriteString(w, "hello "+p.ID)
	})
	srv := httptest.NewServer(server.AdminOnly(svc, secret))
	defer srv.Close()
	srvOpen := httptest.NewServer(server.AdminOnly(open, secret))
	defer srvOpen.Close()

	for _, tc := range []struct {
		name   string
		url    string
		authz  []string
		status int
		body   string
	}{
		{"no token", srv.URL, nil, http.StatusUnauthorized, ""},
		{"unknown token", srv.URL, []string{"Bearer nope"}, http.StatusUnauthorized, ""},
		{"not bearer", srv.URL, []string{"Basic cm9vdDo="}, http.StatusUnauthorized, ""},
		{"two tokens", srv.URL, []string{"Bearer root", "Bearer root"}, http.StatusUnauthorized, ""},
		{"not an admin", srv.URL, []string{"Bearer alice"}, http.StatusForbidden, ""},
		{"admin", srv.URL, []string{"Bearer root"}, http.StatusOK, "hello ops"},
		{"no tokens configured, none sent", srvOpen.URL, nil, http.StatusUnauthorized, ""},
		{"no tokens configured, one sent", srvOpen.URL, []string{"Bearer root"}, http.StatusForbidden, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
			for _, v := range tc.authz {
				req.Header.Add("Authorization", v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", res.StatusCode, b, tc.status)
			}
			if tc.body != "" && string(b) != tc.body {
				t.Fatalf("body %q, want %q", b, tc.body)
			}
			if tc.status == http.StatusOK {
				return
			}
			if len(b) >= 5 && string(b[:5]) == "hello" {
				t.Fatalf("a refused request reached the handler: %q", b)
			}
		})
	}
}

func TestAdminOnlyOverTheRateLimit(t *testing.T) {
	frozen := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lim, err := server.NewRateLimiter(server.RateLimit{PerSecond: 1, Burst: 1}, func() time.Time { return frozen })
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := newService(t, &server.Options{
		Authenticate: server.RateLimited(func(_ context.Context, tok string) (core.Principal, error) {
			if tok == "root" {
				return core.Principal{ID: "ops", Attrs: map[string]string{"role": server.AdminRole}}, nil
			}
			return core.Principal{}, core.ErrUnauthorized
		}, lim),
	})
	srv := httptest.NewServer(server.AdminOnly(svc, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})))
	defer srv.Close()
	get := func() *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		req.Header.Set("Authorization", "Bearer root")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := get(); res.StatusCode != http.StatusOK {
		t.Fatalf("first request: %d, want 200", res.StatusCode)
	}
	res := get()
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "1" {
		t.Fatalf("second request: %d Retry-After %q, want 429 and 1", res.StatusCode, res.Header.Get("Retry-After"))
	}
}
