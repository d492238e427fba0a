package graphql_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	gql "github.com/offsync/offsync/drivers/transport/graphql"
	"github.com/offsync/offsync/server"
)

// newAuthority returns a server.Service over a SQLite file in t.TempDir()
// serving any lower-case kind as documents.
func newAuthority(t testing.TB, opts *server.Options) *server.Service {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "authority.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var o server.Options
	if opts != nil {
		o = *opts
	}
	if o.DynamicKinds == nil && o.Tables == nil {
		o.DynamicKinds = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	}
	svc, err := server.New(ctx, st, &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// live is the GraphQL half of an authority served on 127.0.0.1 through
// server.NewHTTPMux, as offsync.Serve mounts it.
type live struct {
	t    testing.TB
	half server.HTTPTransport
	srv  *http.Server
	addr string
	done chan struct{}
}

// URL is the endpoint the client dials.
func (l *live) URL() string { return "http://" + l.addr + "/graphql" }

// serveOn opens the "graphql" half by its registered name over authority
// and serves it on addr ("127.0.0.1:0" for a fresh port).
func serveOn(t testing.TB, authority core.Transport, addr string, cfg server.TransportConfig) *live {
	t.Helper()
	ts, err := server.OpenServer(context.Background(), "graphql", authority, cfg)
	if err != nil {
		t.Fatal(err)
	}
	half := ts.(server.HTTPTransport)
	mux, err := server.NewHTTPMux(map[string]http.Handler{"/graphql": half})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for i := 0; ; i++ { // the same address again after a restart: the port may linger briefly
		ln, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	l := &live{t: t, half: half, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr().String(), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		_ = l.srv.Serve(ln)
	}()
	t.Cleanup(l.stop)
	return l
}

func serve(t testing.TB, authority core.Transport) *live {
	return serveOn(t, authority, "127.0.0.1:0", server.TransportConfig{})
}

// stop ends the half's sockets (going away), then the listener.
func (l *live) stop() {
	select {
	case <-l.done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = l.half.Shutdown(ctx)
	_ = l.srv.Shutdown(ctx)
	<-l.done
}

// newClient returns a client of l, closed when the test ends.
func newClient(t testing.TB, url string, o *gql.Options) *gql.Client {
	t.Helper()
	c, err := gql.NewClient(url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
