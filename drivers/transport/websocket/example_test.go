package websocket_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/websocket"
	"github.com/offsync/offsync/server"
)

// exampleAuthority opens an authority of documents of kind "todo" on a
// SQLite file in a temporary directory; the function closes and removes it.
func exampleAuthority(ctx context.Context) (*server.Service, func()) {
	dir, _ := os.MkdirTemp("", "offsync-ws-example")
	st, err := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), nil)
	if err != nil {
		panic(err)
	}
	svc, err := server.New(ctx, st, &server.Options{Tables: []core.Table{core.Documents("todo")}})
	if err != nil {
		panic(err)
	}
	return svc, func() { svc.Close(); st.Close(); os.RemoveAll(dir) }
}

// An authority served over WebSocket at /ws, and a client that pushes a
// record, subscribes, and pulls it back, all on one socket.
func Example() {
	ctx := context.Background()
	svc, closeAuthority := exampleAuthority(ctx)
	defer closeAuthority()

	// The server half, opened by its registered name and mounted at /ws.
	half, err := server.OpenServer(ctx, "websocket", svc, server.TransportConfig{})
	if err != nil {
		panic(err)
	}
	mux, _ := server.NewHTTPMux(map[string]http.Handler{"/ws": half.(server.HTTPTransport)})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer half.Shutdown(ctx)

	c := websocket.NewClient("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	defer c.Close()
	notices, err := c.Subscribe(ctx, []string{"todo"})
	if err != nil {
		panic(err)
	}
	res, err := c.Push(ctx, []core.Op{{OpID: "op-1", Kind: "todo", ID: "t1", Type: core.OpUpsert,
		Payload: json.RawMessage(`{"title":"buy milk"}`)}})
	if err != nil {
		panic(err)
	}
	fmt.Println("push:", res[0].Status)
	n := <-notices
	fmt.Println("notice:", n.Kind, n.ID)
	page, err := c.Pull(ctx, core.PullRequest{Kind: "todo"})
	if err != nil {
		panic(err)
	}
	fmt.Println("pulled:", page.Records[0].ID, string(page.Records[0].Data))
	// Output:
	// push: applied
	// notice: todo t1
	// pulled: t1 {"title":"buy milk"}
}

// A walk of a kind streamed over one pullPages request: the server sends
// page after page within the client's window, and each page is yielded as
// it comes.
func ExampleClient_PullPages() {
	ctx := context.Background()
	svc, closeAuthority := exampleAuthority(ctx)
	defer closeAuthority()
	var ops []core.Op
	for i := range 5 {
		ops = append(ops, core.Op{OpID: fmt.Sprint("op-", i), Kind: "todo", ID: fmt.Sprint("t", i), Type: core.OpUpsert,
			Payload: json.RawMessage(`{"title":"x"}`)})
	}
	if _, err := svc.Push(ctx, ops); err != nil {
		panic(err)
	}
	half, err := server.OpenServer(ctx, "websocket", svc, server.TransportConfig{})
	if err != nil {
		panic(err)
	}
	mux, _ := server.NewHTTPMux(map[string]http.Handler{"/ws": half.(server.HTTPTransport)})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer half.Shutdown(ctx)

	c := websocket.NewClient("ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	defer c.Close()
	err = c.PullPages(ctx, core.PullRequest{Kind: "todo", Limit: 2}, func(p core.Page) error {
		var ids []string
		for _, r := range p.Records {
			ids = append(ids, r.ID)
		}
		fmt.Println("page:", ids, "last:", p.NextPageToken == "")
		return nil
	})
	fmt.Println("end:", err)
	// Output:
	// page: [t0 t1] last: false
	// page: [t2 t3] last: false
	// page: [t4] last: true
	// end: <nil>
}
