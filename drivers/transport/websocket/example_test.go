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

// An authority served over WebSocket at /ws, and a client that pushes a
// record, subscribes, and pulls it back, all on one socket.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-ws-example")
	defer os.RemoveAll(dir)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), nil)
	if err != nil {
		panic(err)
	}
	defer st.Close()
	svc, err := server.New(ctx, st, &server.Options{Tables: []core.Table{core.Documents("todo")}})
	if err != nil {
		panic(err)
	}
	defer svc.Close()

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
