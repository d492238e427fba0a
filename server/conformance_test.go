package server_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/offsync/offsync/conformance/transporttest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
)

// inProcessHarness runs the transport suite on the in-process transport:
// the replica calls the *server.Service directly.
type inProcessHarness struct{}

func (inProcessHarness) NewStore(t *testing.T) core.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "store.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (inProcessHarness) NewClient(t *testing.T, authority core.Transport, o transporttest.ClientOptions) core.Transport {
	return transporttest.InProcess(authority, o.Token)
}

func (inProcessHarness) Features() transporttest.Features {
	return transporttest.Features{Realtime: true, Batch: true, Getter: true}
}

func TestTransportConformance(t *testing.T) { transporttest.Run(t, inProcessHarness{}) }
