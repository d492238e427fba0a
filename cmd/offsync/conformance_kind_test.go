package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestConformanceKindSafety: against a server that does not serve the kind,
// one clear line and no checks; a kind that holds real records is refused
// unless --allow-existing, and the command says which records it writes.
func TestConformanceKindSafety(t *testing.T) {
	t.Parallel()
	p := startServe(t, "--kind", "note")

	out, errOut, code := runCLI(t, "conformance", "--transport", "rest", "--url", p.URL)
	if code != 2 || !strings.Contains(errOut, `kind "conformance" is not served by `+p.URL) || !strings.Contains(errOut, "pass --kind") {
		t.Errorf("unserved kind: exit %d, want 2 and one line naming the kind:\n%s", code, errOut)
	}
	if strings.Contains(out, "FAIL") || strings.Contains(out, "PASS") {
		t.Errorf("checks ran against an unserved kind:\n%s", out)
	}

	// Real data in note.
	req, err := http.NewRequest(http.MethodPut, p.URL+"/note/shopping-list", strings.NewReader(`{"title":"milk"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT a real record: %s", resp.Status)
	}
	out, errOut, code = runCLI(t, "conformance", "--transport", "rest", "--url", p.URL, "--kind", "note")
	if code != 2 || !strings.Contains(errOut, "shopping-list") || !strings.Contains(errOut, "--allow-existing") || strings.Contains(out, "PASS") {
		t.Errorf("a kind with real records: exit %d, want 2 and a refusal:\n%s%s", code, out, errOut)
	}
	out, errOut, code = runCLI(t, "conformance", "--transport", "rest", "--url", p.URL, "--kind", "note", "--allow-existing")
	if !strings.Contains(out, `writing test records to kind "note"`) || !strings.Contains(out, "PASS") {
		t.Errorf("--allow-existing: exit %d, the checks did not run or say what they write:\n%s%s", code, out, errOut)
	}
}
