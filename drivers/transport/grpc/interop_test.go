package grpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// nodeOrSkip returns node's path and the interop directory, or skips loudly
// (fails under CI=true) when node or the npm packages are missing.
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
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules", "@grpc", "grpc-js")); err != nil {
		missing = "interop/node/node_modules has no @grpc/grpc-js (run npm ci in interop/node)"
	}
	if missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the Node interop test cannot run under CI=true: %s", missing)
		}
		t.Skipf("SKIPPING the Node interop test: %s", missing)
	}
	return node, dir
}

// TestNodeInterop: a client written from sync.proto alone in another
// language (Node's @grpc/grpc-js with @grpc/proto-loader) pulls a page,
// walks the rest, subscribes, pushes an op and hears of it, and streams the
// same walk over PullPages, against the server half opened by its
// registered name.
func TestNodeInterop(t *testing.T) {
	node, dir := nodeOrSkip(t)
	svc := newAuthority(t, &server.Options{Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
		if tok != "node-token" {
			return core.Principal{}, core.ErrUnauthorized
		}
		return core.Principal{ID: "node"}, nil
	}})
	actx := core.WithPrincipal(t.Context(), core.Principal{ID: "node"})
	var seed []core.Op
	for i := range 3 {
		seed = append(seed, core.Op{OpID: fmt.Sprint("seed-", i), Kind: "todo", ID: fmt.Sprint("seed-", i),
			Type: core.OpUpsert, Payload: []byte(fmt.Sprintf(`{"title":"seed %d","n":%d}`, i, i))})
	}
	if _, err := svc.Push(actx, seed); err != nil {
		t.Fatal(err)
	}
	r := serve(t, svc, server.TransportConfig{})

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "grpc_sync.js"), r.addr, "node-token", "todo")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node grpc_sync.js: %v\n%s\n%s", err, out, stderr)
	}
	var got struct {
		Protocol  int            `json:"protocol"`
		FirstPage int            `json:"firstPage"`
		Seen      []string       `json:"seen"`
		Data      map[string]any `json:"data"`
		Status    int            `json:"pushStatus"`
		UpdatedAt string         `json:"updatedAt"`
		Streamed  []string       `json:"streamed"`
		Pages     int            `json:"streamPages"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("node printed %s: %v", out, err)
	}
	t.Logf("node: %s", out)
	if got.Protocol != 1 || got.FirstPage != 2 || len(got.Seen) != 4 || got.Data["title"] != "seed 0" || got.Status != 200 {
		t.Errorf("node saw %+v", got)
	}
	if !slices.Equal(got.Streamed, got.Seen) || got.Pages != 2 {
		t.Errorf("node streamed %v in %d pages; pulled %v in 2", got.Streamed, got.Pages, got.Seen)
	}
	rec, err := svc.Get(actx, "todo", "from-node")
	if err != nil {
		t.Fatalf("the op node pushed is not at the authority: %v", err)
	}
	if fmt.Sprint(rec.UpdatedAt.UnixMicro()) != got.UpdatedAt || string(rec.Data) != `{"n":42,"title":"written by node"}` && string(rec.Data) != `{"title":"written by node","n":42}` {
		t.Errorf("authority has %s at %d; node was told %s", rec.Data, rec.UpdatedAt.UnixMicro(), got.UpdatedAt)
	}
}
