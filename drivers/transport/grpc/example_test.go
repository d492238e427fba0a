package grpc_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	ogrpc "github.com/offsync/offsync/drivers/transport/grpc"
	"github.com/offsync/offsync/server"
)

// Serve an authority over gRPC with the server half opened by name, and
// talk to it with the client.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-grpc-example")
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	svc, err := server.New(ctx, store, &server.Options{DynamicKinds: regexp.MustCompile(`^[a-z]+$`)})
	if err != nil {
		panic(err)
	}
	defer svc.Close()

	half, err := server.OpenServer(ctx, "grpc", svc, server.TransportConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go half.(server.ListenerTransport).Serve(ln)
	defer half.Shutdown(ctx)

	client, err := ogrpc.NewClient("grpc://"+ln.Addr().String(), &ogrpc.Options{
		Token: func(ctx context.Context, refresh bool) (string, error) { return "secret", nil },
	})
	if err != nil {
		panic(err)
	}
	defer client.Close()
	res, err := client.Push(ctx, []core.Op{{OpID: "op-1", Kind: "todo", ID: "t1", Type: core.OpUpsert,
		Payload: json.RawMessage(`{"title":"buy milk"}`)}})
	if err != nil {
		panic(err)
	}
	fmt.Println(res[0].Status)

	page, err := client.Pull(ctx, core.PullRequest{Kind: "todo"})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(page.Records), page.Records[0].ID, string(page.Records[0].Data))

	// A walk's pages over one stream: the server reads a page ahead only
	// as the client takes them.
	if _, err := client.Push(ctx, []core.Op{
		{OpID: "op-2", Kind: "todo", ID: "t2", Type: core.OpUpsert, Payload: json.RawMessage(`{"title":"tea"}`)},
		{OpID: "op-3", Kind: "todo", ID: "t3", Type: core.OpUpsert, Payload: json.RawMessage(`{"title":"bread"}`)},
	}); err != nil {
		panic(err)
	}
	err = client.PullPages(ctx, core.PullRequest{Kind: "todo", Limit: 2}, func(p core.Page) error {
		for _, r := range p.Records {
			fmt.Print(r.ID, " ")
		}
		fmt.Println("| more:", p.NextPageToken != "")
		return nil
	})
	if err != nil {
		panic(err)
	}
	// Output:
	// applied
	// 1 t1 {"title":"buy milk"}
	// t1 t2 | more: true
	// t3 | more: false
}

// Open the client by driver name, as a config file does.
func Example_driver() {
	t, err := core.OpenTransport(context.Background(), "grpc", "grpcs://sync.example.com:8081",
		map[string]any{"token": "secret", "timeout": "10s"})
	fmt.Println(t != nil, err)
	t.(*ogrpc.Client).Close()
	_, err = core.OpenTransport(context.Background(), "grpc", "https://sync.example.com", nil)
	fmt.Println(err)
	// Output:
	// true <nil>
	// grpc: offsync: invalid input: url "https://sync.example.com" must be grpc://host:port or grpcs://host:port
}
