package rest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/offsync/offsync/conformance/transporttest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
)

// restHarness runs the transport suite on the REST transport: the
// authority behind rest.NewHandler on 127.0.0.1:0, and a rest.Client.
type restHarness struct{}

func (restHarness) NewStore(t *testing.T) core.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (restHarness) NewClient(t *testing.T, authority core.Transport, o transporttest.ClientOptions) core.Transport {
	srv := httptest.NewServer(rest.NewHandler(authority, nil))
	t.Cleanup(srv.Close)
	var rt http.RoundTripper = &http.Transport{}
	if o.WrapHTTP != nil {
		rt = o.WrapHTTP(rt)
	}
	opts := &rest.Options{HTTPClient: &http.Client{Transport: rt}}
	if o.Token != "" {
		opts.Token = func(context.Context, bool) (string, error) { return o.Token, nil }
	}
	return rest.NewClient(srv.URL, opts)
}

func (restHarness) Features() transporttest.Features {
	return transporttest.Features{Realtime: true, Batch: true, Getter: true, HTTP: true}
}

func TestTransportConformance(t *testing.T) { transporttest.Run(t, restHarness{}) }
