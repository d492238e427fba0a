package graphql_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/offsync/offsync/conformance/transporttest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	gql "github.com/offsync/offsync/drivers/transport/graphql"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
)

// harness runs the transport suite on the GraphQL pair: the authority
// behind the "graphql" half (opened by its registered name) on 127.0.0.1:0,
// and a gql.Client whose requests and socket dials go through the suite's
// HTTP fault injector, over connections through its connection wrapper.
type harness struct{}

func (harness) NewStore(t *testing.T) core.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (harness) NewClient(t *testing.T, authority core.Transport, o transporttest.ClientOptions) core.Transport {
	l := serve(t, authority)
	tr := &http.Transport{}
	if o.WrapConn != nil {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return o.WrapConn(c), nil
		}
	}
	var rt http.RoundTripper = tr
	if o.WrapHTTP != nil {
		rt = o.WrapHTTP(rt)
	}
	return newClient(t, l.URL(), &gql.Options{HTTPClient: &http.Client{Transport: rt}, Token: wire.StaticToken(o.Token)})
}

func (harness) Features() transporttest.Features {
	return transporttest.Features{Realtime: true, Batch: true, Getter: true, HTTP: true, Conn: true}
}

func TestTransportConformance(t *testing.T) { transporttest.Run(t, harness{}) }
