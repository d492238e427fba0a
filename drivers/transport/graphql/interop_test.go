package graphql_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
	gql "github.com/offsync/offsync/drivers/transport/graphql"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
)

// needNode returns the node binary and interop/node, or skips loudly
// (fails under CI=true) when node or the npm packages are missing.
func needNode(t *testing.T) (string, string) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "interop", "node"))
	if err != nil {
		t.Fatal(err)
	}
	missing := func(why string) {
		msg := "SKIPPING the GraphQL interop test with the npm graphql-ws client: " + why +
			" (run `npm ci` in interop/node)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("no node on PATH")
	}
	for _, pkg := range []string{"graphql-ws", "ws"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			missing("interop/node/node_modules/" + pkg + " is not installed")
		}
	}
	return node, dir
}

// A GraphQL client that is not ours syncs with the server half: the npm
// graphql-ws client subscribes, and fetch POSTs pull and push, written from
// docs/protocol.md only (interop/node/graphql_sync.mjs).
func TestInteropNodeGraphQLWS(t *testing.T) {
	node, dir := needNode(t)
	ctx := testCtx(t)
	svc := newAuthority(t, &server.Options{Authenticate: func(_ context.Context, tok string) (core.Principal, error) {
		if tok != "node-token" {
			return core.Principal{}, fmt.Errorf("%w: unknown token", core.ErrUnauthorized)
		}
		return core.Principal{ID: "node"}, nil
	}})
	l := serve(t, svc)
	goc := newClient(t, l.URL(), &gql.Options{Token: wire.StaticToken("node-token")})
	write := func(id string) {
		t.Helper()
		res, err := goc.Push(ctx, []core.Op{{OpID: "go-" + id, Kind: "todo", ID: id, Type: core.OpUpsert,
			Payload: json.RawMessage(`{"from":"go"}`)}})
		if err != nil || res[0].Status != core.StatusApplied {
			t.Fatalf("push %s: %+v %v", id, res, err)
		}
	}
	write("g1")

	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "graphql_sync.mjs"), l.URL(), "node-token")
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if line == "READY" {
			write("g2")
		}
	}
	err = cmd.Wait()
	if err != nil || len(lines) == 0 || lines[len(lines)-1] != "OK" {
		t.Fatalf("node: %v\nstdout:\n%s\nstderr:\n%s", err, strings.Join(lines, "\n"), stderr.String())
	}
	// What node wrote is in the authority: n1 created, edited, deleted.
	rec, err := svc.Get(core.WithPrincipal(ctx, core.Principal{ID: "node"}), "todo", "n1")
	if err != nil || !rec.Deleted() {
		t.Fatalf("n1 in the authority: %+v %v", rec, err)
	}
}
