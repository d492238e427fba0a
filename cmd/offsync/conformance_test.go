package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsync/offsync/conformance/contract/defects"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

func TestConformancePassesAgainstServe(t *testing.T) {
	tokens := writeTokens(t, "one alice\ntwo bob\n")
	p := startServe(t, "--kind", "conformance", "--tokens", tokens, "--scope", "conformance=owner")
	out, errOut, code := runCLI(t, "conformance", "--transport", "rest", "--url", p.URL, "--token", "one", "--token2", "two")
	if code != 0 {
		t.Fatalf("exit %d against offsync serve\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if strings.Contains(out, "FAIL") || strings.Contains(out, "SKIP") || strings.Count(out, "PASS ") < 20 {
		t.Errorf("want every check to pass:\n%s", out)
	}
}

func TestConformanceSkipsScopeWithoutSecondToken(t *testing.T) {
	p := startServe(t, "--kind", "conformance")
	out, _, code := runCLI(t, "conformance", "--url", p.URL)
	if code != 0 || !strings.Contains(out, "SKIP scope-invisibility: no second token") {
		t.Errorf("exit %d, want 0 with a SKIP line for scope:\n%s", code, out)
	}
}

// defectiveServer serves the reference authority through a defect.
func defectiveServer(t *testing.T, defect func(http.Handler) http.Handler) string {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "auth.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc, err := server.New(context.Background(), st, &server.Options{Tables: []core.Table{core.Documents("conformance")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	srv := httptest.NewServer(defect(rest.NewHandler(svc, nil)))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestConformanceFailsAgainstDefectiveServers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		defect func(http.Handler) http.Handler
		line   string
	}{
		{"offset page tokens", defects.OffsetTokens, "FAIL keyset-paging-with-writes: rows"},
		{"timestamps truncated to seconds", defects.SecondTimestamps, "FAIL microsecond-timestamps: updated_at"},
		{"409 cached under the idempotency key", defects.Caching409, "FAIL forced-retry-after-409: the forced retry of a conflicted op answered 409 again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, "conformance", "--url", defectiveServer(t, tc.defect))
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(out, tc.line) {
				t.Errorf("no line %q in:\n%s", tc.line, out)
			}
			if !strings.Contains(errOut, "checks failed") {
				t.Errorf("stderr %q does not say checks failed", errOut)
			}
		})
	}
}

func TestConformanceUsage(t *testing.T) {
	for _, args := range [][]string{
		{"conformance"},
		{"conformance", "--url", "http://127.0.0.1:1", "--transport", "grpc"},
		{"conformance", "--url", "not a url"},
	} {
		if _, errOut, code := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errOut)
		}
	}
}
