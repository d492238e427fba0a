package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// BenchmarkPushWire is `offsync bench`'s push in one process: a replica
// pushes 10,000 queued items to a fresh durable authority (SQLite,
// synchronous FULL) over each wire form the bench serves (the bench's own
// server worker, serveRole, on 127.0.0.1), and over none: wire=none hands
// the engine the authority's server.Service itself, so a push costs the
// two stores' work and nothing for framing, encoding or sockets. That is
// the fastest any wire could push on this machine, and the ratio of a
// wire's ops/s to none's is how much of the push the wire costs. Besides
// ops/s it reports cpu-µs/op, the whole process's user+sys time per op
// (client, server and wire together).
//
//	go test ./internal/bench -run '^$' -bench PushWire -benchtime 3x -count 3
func BenchmarkPushWire(b *testing.B) {
	for _, wire := range []string{"none", "rest", "websocket", "grpc"} {
		b.Run("wire="+wire, func(b *testing.B) { benchPushWire(b, wire) })
	}
}

func benchPushWire(b *testing.B, wire string) {
	ctx := context.Background()
	var cpu time.Duration
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		tr := pushWireTransport(b, wire)
		st, err := openReplica(ctx, filepath.Join(b.TempDir(), "replica.db"))
		if err != nil {
			b.Fatal(err)
		}
		eng, err := core.NewEngine(ctx, st, tr, &core.Options{Tables: []core.Table{Items}})
		if err != nil {
			b.Fatal(err)
		}
		if err := enqueue(ctx, eng, 0, authPushOps); err != nil {
			b.Fatal(err)
		}
		c0 := procCPU(b)
		b.StartTimer()
		stats, err := eng.Sync(ctx, core.PullKinds())
		b.StopTimer()
		cpu += procCPU(b) - c0
		if err != nil || stats.Pushed != authPushOps || stats.Errors != 0 {
			b.Fatalf("pushed %d of %d (%d errors): %v", stats.Pushed, authPushOps, stats.Errors, err)
		}
		eng.Close()
		st.Close()
		b.StartTimer()
	}
	ops := float64(b.N * authPushOps)
	b.ReportMetric(ops/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(cpu.Microseconds())/ops, "cpu-µs/op")
}

// pipelined is the authority's Service as a transport that keeps two
// pushes in flight, as every wire's client does (core.Pipeliner).
type pipelined struct{ *server.Service }

func (pipelined) PushDepth() int { return 2 }

// pushWireTransport returns a transport to a fresh authority: its
// server.Service for wire "none" (two pushes in flight, as the
// wires' clients), else a client of the named wire form
// served by the bench's server worker, stopped at the end of the test.
func pushWireTransport(b *testing.B, wire string) core.Transport {
	if wire == "none" {
		svc, _ := benchAuthority(b)
		return pipelined{svc}
	}
	ctx := context.Background()
	db := filepath.Join(b.TempDir(), "auth.db")
	stdin, closeStdin := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := serveRole(ctx, Spec{Role: RoleServer, DB: db, Store: StoreSQLite}, stdin, outW)
		outW.CloseWithError(err)
		done <- err
	}()
	b.Cleanup(func() {
		closeStdin.Close()
		if err := <-done; err != nil {
			b.Errorf("server: %v", err)
		}
	})
	line, err := bufio.NewReader(outR).ReadBytes('\n')
	if err != nil {
		b.Fatalf("server hello: %v", err)
	}
	go io.Copy(io.Discard, outR)
	var h hello
	if err := json.Unmarshal(line, &h); err != nil {
		b.Fatalf("server hello %q: %v", line, err)
	}
	tr, err := openTransport(ctx, Spec{Transport: wire, URL: h.Endpoints[wire]}, "")
	if err != nil {
		b.Fatal(err)
	}
	if c, ok := tr.(io.Closer); ok {
		b.Cleanup(func() { c.Close() })
	}
	return tr
}
