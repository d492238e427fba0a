package grpc_test

import (
	"testing"

	"github.com/offsync/offsync/conformance/transporttest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// grpcHarness runs the transport suite over a real gRPC connection: the
// authority behind the server half opened by its registered name on
// 127.0.0.1:0, and a Client dialing it.
type grpcHarness struct{}

func (grpcHarness) NewStore(t *testing.T) core.Store { return newStore(t, "store.db") }

func (grpcHarness) NewClient(t *testing.T, authority core.Transport, o transporttest.ClientOptions) core.Transport {
	r := serve(t, authority, server.TransportConfig{})
	return dial(t, r.addr, o.Token, nil)
}

func (grpcHarness) Features() transporttest.Features {
	return transporttest.Features{Realtime: true, Batch: true, Getter: true}
}

func TestTransportConformance(t *testing.T) { transporttest.Run(t, grpcHarness{}) }
