package grpc_test

import (
	"context"
	"net"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	ogrpc "github.com/offsync/offsync/drivers/transport/grpc"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
)

// newStore returns a SQLite store in t.TempDir().
func newStore(t testing.TB, name string) core.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), name), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newAuthority returns a server.Service over a SQLite file serving any
// lower-case kind as documents.
func newAuthority(t testing.TB, opts *server.Options) *server.Service {
	t.Helper()
	var o server.Options
	if opts != nil {
		o = *opts
	}
	if o.DynamicKinds == nil && o.Tables == nil {
		o.DynamicKinds = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	}
	svc, err := server.New(context.Background(), newStore(t, "authority.db"), &o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// running is a server half serving on a listener.
type running struct {
	ts   server.ListenerTransport
	addr string
	done chan error
}

// stop shuts the half down and waits for Serve to return.
func (r *running) stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.ts.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-r.done; err != nil {
		t.Errorf("serve: %v", err)
	}
}

// serveOn opens the "grpc" server half by its registered name over
// authority and serves it on addr ("127.0.0.1:0" for any port).
func serveOn(t testing.TB, authority core.Transport, addr string, cfg server.TransportConfig) *running {
	t.Helper()
	cfg.Addr = addr
	ts, err := server.OpenServer(context.Background(), "grpc", authority, cfg)
	if err != nil {
		t.Fatalf("open the grpc server half: %v", err)
	}
	var ln net.Listener
	for range 100 { // a restarted server may wait for its port
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	r := &running{ts: ts.(server.ListenerTransport), addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { r.done <- r.ts.Serve(ln) }()
	return r
}

// serve serves authority on 127.0.0.1:0 until the test ends.
func serve(t testing.TB, authority core.Transport, cfg server.TransportConfig) *running {
	r := serveOn(t, authority, "127.0.0.1:0", cfg)
	t.Cleanup(func() { r.stop(t) })
	return r
}

// dial returns a client of addr, closed when the test ends.
func dial(t testing.TB, addr, token string, o *ogrpc.Options) *ogrpc.Client {
	t.Helper()
	var opts ogrpc.Options
	if o != nil {
		opts = *o
	}
	if token != "" && opts.Token == nil {
		opts.Token = wire.StaticToken(token)
	}
	c, err := ogrpc.NewClient("grpc://"+addr, &opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
