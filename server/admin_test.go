package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

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
