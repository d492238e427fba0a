package websocket_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/drivers/transport/websocket"
	"github.com/offsync/offsync/server"
)

func newStore(t testing.TB) core.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// served is a websocket half opened by its registered name, mounted on a
// real HTTP server on 127.0.0.1:0 as offsync.Serve mounts it.
type served struct {
	half server.TransportServer
	srv  *httptest.Server
	url  string // ws://127.0.0.1:port/ws
}

// serve opens the "websocket" half over authority with lim and serves it;
// everything ends with the test.
func serve(t testing.TB, authority core.Transport, lim server.Limits) *served {
	t.Helper()
	half, err := server.OpenServer(context.Background(), "websocket", authority, server.TransportConfig{Limits: lim})
	if err != nil {
		t.Fatalf("open the websocket half: %v", err)
	}
	return serveHalf(t, half)
}

// serveHalf serves an opened half at /ws on 127.0.0.1:0.
func serveHalf(t testing.TB, half server.TransportServer) *served {
	t.Helper()
	mux, err := server.NewHTTPMux(map[string]http.Handler{"/ws": half.(server.HTTPTransport)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	s := &served{half: half, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = half.Shutdown(ctx)
		srv.CloseClientConnections()
		srv.Close()
	})
	return s
}

// newClient returns a client of s, closed with the test.
func newClient(t testing.TB, url string, token string, wrap func(net.Conn) net.Conn) *websocket.Client {
	t.Helper()
	c := websocket.NewClient(url, &websocket.Options{Token: wire.StaticToken(token), WrapConn: wrap,
		Backoff: wire.Backoff{Min: 5 * time.Millisecond, Max: 100 * time.Millisecond}})
	t.Cleanup(func() { c.Close() })
	return c
}
