package graphql_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	gql "github.com/offsync/offsync/drivers/transport/graphql"
	"github.com/offsync/offsync/server"
)

// An authority served over GraphQL at /graphql, and a client that pushes a
// record, pulls it back and hears of changes through the subscription.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-graphql-example")
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	svc, err := server.New(ctx, st, &server.Options{DynamicKinds: regexp.MustCompile(`^[a-z]+$`)})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Close()

	// The server half, opened by its registered name and mounted as
	// offsync.Serve mounts it.
	half, err := server.OpenServer(ctx, "graphql", svc, server.TransportConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux, _ := server.NewHTTPMux(map[string]http.Handler{"/graphql": half.(server.HTTPTransport)})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	defer hs.Close()
	defer half.Shutdown(ctx)

	c, err := gql.NewClient("http://"+ln.Addr().String()+"/graphql", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	notices, err := c.Subscribe(ctx, []string{"todo"}) // in force once it returns
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := c.Push(ctx, []core.Op{{OpID: "op-1", Kind: "todo", ID: "t1", Type: core.OpUpsert,
		Payload: json.RawMessage(`{"title":"Buy milk"}`)}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("push:", res[0].Status)
	n := <-notices
	fmt.Println("notice:", n.Kind, n.ID, n.UpdatedAt.Equal(res[0].Record.UpdatedAt))
	page, err := c.Pull(ctx, core.PullRequest{Kind: "todo"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("pull:", len(page.Records), page.Records[0].ID, string(page.Records[0].Data))
	// Output:
	// push: applied
	// notice: todo t1 true
	// pull: 1 t1 {"title":"Buy milk"}
}
