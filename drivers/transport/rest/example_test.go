package rest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
)

// Serve an authority over REST and talk to it with the client.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-rest-example")
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

	srv := httptest.NewServer(rest.NewHandler(svc, nil))
	defer srv.Close()

	client := rest.NewClient(srv.URL, &rest.Options{
		Token: func(ctx context.Context, refresh bool) (string, error) { return "secret", nil },
	})
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
	// Output:
	// applied
	// 1 t1 {"title":"buy milk"}
}

// Open the client by driver name, as a config file does.
func Example_driver() {
	t, err := core.OpenTransport(context.Background(), "rest", "https://api.example.com/sync",
		map[string]any{"token": "secret", "timeout": "10s"})
	fmt.Println(t != nil, err)
	_, err = core.OpenTransport(context.Background(), "rest", "https://api.example.com", map[string]any{"tokn": "x"})
	fmt.Println(err != nil)
	// Output:
	// true <nil>
	// true
}
