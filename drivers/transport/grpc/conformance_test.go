package grpc_test

import (
	"context"
	"net"
	"testing"
	"time"

	grpcgo "google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/offsync/offsync/conformance/transporttest"
	"github.com/offsync/offsync/core"
	ogrpc "github.com/offsync/offsync/drivers/transport/grpc"
	"github.com/offsync/offsync/server"
)

// grpcHarness runs the transport suite over a real gRPC connection: the
// authority behind the server half opened by its registered name on
// 127.0.0.1:0, and a Client dialing it, every connection through the
// suite's wrapper (connection faults).
type grpcHarness struct{}

func (grpcHarness) NewStore(t *testing.T) core.Store { return newStore(t, "store.db") }

func (grpcHarness) NewClient(t *testing.T, authority core.Transport, o transporttest.ClientOptions) core.Transport {
	r := serve(t, authority, server.TransportConfig{})
	var opts ogrpc.Options
	if o.WrapConn != nil {
		opts.DialOptions = []grpcgo.DialOption{grpcgo.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return o.WrapConn(c), nil
		}),
			// The suite cuts connections on purpose, often during their
			// handshake: reconnect at once rather than after gRPC's
			// one-second base delay, so the cases spend their time on
			// syncing instead of waiting.
			grpcgo.WithConnectParams(grpcgo.ConnectParams{Backoff: backoff.Config{
				BaseDelay: 5 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 100 * time.Millisecond}}),
		}
	}
	return dial(t, r.addr, o.Token, &opts)
}

func (grpcHarness) Features() transporttest.Features {
	return transporttest.Features{Realtime: true, Batch: true, Getter: true, Conn: true}
}

func TestTransportConformance(t *testing.T) { transporttest.Run(t, grpcHarness{}) }
