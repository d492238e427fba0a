package websocket_test

import (
	"testing"

	"github.com/offsync/offsync/conformance/transporttest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// wsHarness runs the transport suite over real sockets: the authority
// behind the "websocket" half (opened by its registered name) on
// 127.0.0.1:0, and a websocket.Client dialing it.
type wsHarness struct{}

func (wsHarness) NewStore(t *testing.T) core.Store { return newStore(t) }

func (wsHarness) NewClient(t *testing.T, authority core.Transport, o transporttest.ClientOptions) core.Transport {
	s := serve(t, authority, server.Limits{})
	return newClient(t, s.url, o.Token, o.WrapConn)
}

func (wsHarness) Features() transporttest.Features {
	return transporttest.Features{Realtime: true, Batch: true, Getter: true, Conn: true}
}

func TestTransportConformance(t *testing.T) { transporttest.Run(t, wsHarness{}) }
