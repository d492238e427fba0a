package contract_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/offsync/offsync/conformance/contract"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

// Check a live server: here offsync's own, served over REST on 127.0.0.1.
// Against any other server, only the URL (and tokens) change.
func ExampleRun() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-contract-")
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "server.db"), nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	svc, err := server.New(ctx, store, &server.Options{Tables: []core.Table{core.Documents("conformance")}})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	srv := httptest.NewServer(rest.NewHandler(svc, nil))
	defer srv.Close()

	results, err := contract.Run(ctx, contract.Config{URL: srv.URL}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("failed checks:", contract.Failed(results))
	// Output:
	// failed checks: 0
}

// Check a live server through a client transport: here offsync's own over
// REST, opened by its registered name. Any registered client transport
// (websocket, grpc, graphql, ...) is checked the same way.
func ExampleRunClient() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-contract-")
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "server.db"), nil)
	if err != nil {
		panic(err)
	}
	defer store.Close()
	svc, err := server.New(ctx, store, &server.Options{Tables: []core.Table{core.Documents("conformance")}})
	if err != nil {
		panic(err)
	}
	defer svc.Close()
	srv := httptest.NewServer(rest.NewHandler(svc, nil))
	defer srv.Close()

	results, err := contract.RunClient(ctx, contract.ClientConfig{
		Open: func(ctx context.Context, token string) (core.Transport, error) {
			return core.OpenTransport(ctx, "rest", srv.URL, map[string]any{"token": token})
		},
	}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("failed checks:", contract.Failed(results))
	// Output:
	// failed checks: 0
}
