package server_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strconv"
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

// raceConvergenceCases is how many cases the convergence property runs here
// under the race detector, where the pure-Go SQLite is about twenty times
// slower: 200 cases took about four minutes of CI, 40 take under half a
// minute and still cross every path with the detector on. Without -race
// (go test ./server, also in CI) the property keeps its 200 cases.
const raceConvergenceCases = 40

func TestTransportConformance(t *testing.T) {
	if raceEnabled && os.Getenv("RAPID_CHECKS") == "" {
		chosen := false
		flag.Visit(func(f *flag.Flag) { chosen = chosen || f.Name == "rapid.checks" })
		if !chosen {
			if err := flag.Set("rapid.checks", strconv.Itoa(raceConvergenceCases)); err != nil {
				t.Fatal(err)
			}
		}
	}
	transporttest.Run(t, inProcessHarness{})
}
