package websocket_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// nodeOrSkip returns node's path and the interop directory, or skips loudly
// (fails under CI=true) when node or the ws package is missing.
func nodeOrSkip(t *testing.T) (node, dir string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "interop", "node"))
	if err != nil {
		t.Fatal(err)
	}
	missing := ""
	node, err = exec.LookPath("node")
	if err != nil {
		missing = "node is not on PATH"
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws")); err != nil {
		missing = "interop/node/node_modules has no ws (run npm ci in interop/node)"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Node interop test cannot run under CI=true: %s", missing)
		}
		t.Skipf("SKIPPING the Node interop test: %s", missing)
	}
	return node, dir
}

// TestNodeInterop: a client written from docs/protocol.md alone in another
// language (Node's ws package) authenticates with an auth frame, walks the
// pages, subscribes, pushes, hears the notice and fetches the record,
// against the half opened by its registered name.
func TestNodeInterop(t *testing.T) {
	node, dir := nodeOrSkip(t)
	tk := newTokens("node-token")
	svc := newAuthority(t, &server.Options{Authenticate: tk.authenticate})
	var seed []core.Op
	for i := range 5 {
		seed = append(seed, core.Op{OpID: fmt.Sprint("seed-", i), Kind: todo, ID: fmt.Sprint("seed-", i),
			Type: core.OpUpsert, Payload: []byte(fmt.Sprintf(`{"title":"seed %d"}`, i))})
	}
	if _, err := svc.Push(core.WithPrincipal(t.Context(), core.Principal{ID: "user"}), seed); err != nil {
		t.Fatal(err)
	}
	s := serve(t, svc, server.Limits{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, filepath.Join(dir, "ws_sync.js"), s.url, "node-token", todo).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node ws_sync.js: %v\n%s\n%s", err, out, stderr)
	}
	var got struct {
		Pulled      int    `json:"pulled"`
		Pushed      int    `json:"pushed"`
		Notice      string `json:"notice"`
		Title       string `json:"title"`
		UnknownKind string `json:"unknownKind"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	if got.Pulled != 5 || got.Pushed != 200 || got.Notice != "from-node" || got.Title != "written by node" || got.UnknownKind != "404 unknown_kind" {
		t.Fatalf("node saw %+v", got)
	}
	rec, err := svc.Get(core.WithPrincipal(t.Context(), core.Principal{ID: "user"}), todo, "from-node")
	var data map[string]any
	if err != nil || json.Unmarshal(rec.Data, &data) != nil || data["title"] != "written by node" || data["n"] != float64(7) {
		t.Fatalf("the authority has %s, %v", rec.Data, err)
	}
}
