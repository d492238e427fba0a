package grpc_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	grpcgo "google.golang.org/grpc"

	"github.com/offsync/offsync/core"
	ogrpc "github.com/offsync/offsync/drivers/transport/grpc"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
)

// replica is a core.Engine over a SQLite file and a gRPC client.
type replica struct {
	eng  *core.Engine
	docs *core.DocWriter
}

func newReplica(t *testing.T, addr string, o *ogrpc.Options, kind string) *replica {
	t.Helper()
	docs := core.Documents(kind)
	eng, err := core.NewEngine(context.Background(), newStore(t, "replica.db"), dial(t, addr, "", o), &core.Options{Tables: []core.Table{docs}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &replica{eng: eng, docs: core.DocsFor(eng, docs)}
}

// waitLimit bounds a wait for an event, so that a missing one fails the
// test instead of hanging it until go test's timeout.
const waitLimit = time.Minute

// waitFor reads sub's events until match, or fails after waitLimit.
func waitFor(t *testing.T, sub *core.Subscription, match func(core.Event) bool) {
	t.Helper()
	limit := time.NewTimer(waitLimit)
	defer limit.Stop()
	for {
		select {
		case <-limit.C:
			t.Fatalf("no awaited event within %v", waitLimit)
		case ev := <-sub.C:
			if se, ok := ev.(core.SyncError); ok {
				t.Logf("sync error while waiting: %v", se.Err)
			}
			if match(ev) {
				return
			}
		case <-t.Context().Done():
			t.Fatal("the test ended before the awaited event")
		}
	}
}

// has reports whether r holds kind/id.
func (r *replica) has(t *testing.T, id string) bool {
	_, err := r.eng.Get(t.Context(), "note", id)
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestRealtimeAcrossRestart: replica B runs with Realtime() only (no
// timer). A's write reaches B through Subscribe; the server is stopped and
// started again on the same address; a write made while it was down
// reaches B by the pull after the gap; a later write by notice again.
func TestRealtimeAcrossRestart(t *testing.T) {
	svc := newAuthority(t, nil)
	r1 := serveOn(t, svc, "127.0.0.1:0", server.TransportConfig{})
	addr := r1.addr
	fast := &ogrpc.Options{Backoff: wire.Backoff{Min: 20 * time.Millisecond, Max: 200 * time.Millisecond}}
	a := newReplica(t, addr, nil, "note")
	b := newReplica(t, addr, fast, "note")

	sub := b.eng.Subscribe(1024)
	defer sub.Close()
	runCtx, stop := context.WithCancel(t.Context())
	ran := make(chan error, 1)
	go func() { ran <- b.eng.Run(runCtx, core.Realtime()) }()
	var r2 *running
	defer func() {
		stop()
		if err := <-ran; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
		if r2 != nil {
			r2.stop(t)
		}
	}()
	waitFor(t, sub, func(ev core.Event) bool { _, ok := ev.(core.SyncCompleted); return ok })

	put := func(id string) {
		t.Helper()
		if err := a.docs.Put(t.Context(), id, map[string]any{"text": id}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.eng.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	waitHas := func(id string) {
		t.Helper()
		for !b.has(t, id) {
			waitFor(t, sub, func(ev core.Event) bool { p, ok := ev.(core.PagePulled); return ok && p.Upserts > 0 })
		}
	}
	put("n1")
	waitHas("n1")

	r1.stop(t)
	// Written while the server is down: no notice can reach B.
	actx := core.WithPrincipal(t.Context(), core.Principal{})
	res, err := svc.Push(actx, []core.Op{{OpID: "down-1", Kind: "note", ID: "n2", Type: core.OpUpsert, Payload: []byte(`{"text":"n2"}`)}})
	if err != nil || res[0].Status != core.StatusApplied {
		t.Fatalf("push while down: %v %v", res, err)
	}
	r2 = serveOn(t, svc, addr, server.TransportConfig{})
	waitHas("n2") // the gap's pull
	put("n3")
	waitHas("n3") // a notice on the new stream
}

// TestCutAfterPushSent: the connection dies after Push was sent and before
// its answer; the ops are sent again with the same op ids and applied once.
// The authority cuts the client's connections while it validates the first
// op, so the request has arrived (gRPC cannot retry it as never sent) and
// its answer can no longer get back.
func TestCutAfterPushSent(t *testing.T) {
	var (
		mu    sync.Mutex
		conns []net.Conn // every connection the client dialed
		cut   atomic.Bool
		armed atomic.Bool
	)
	var applies sync.Map // op id → *atomic.Int32
	svc := newAuthority(t, &server.Options{Validate: func(_ context.Context, _ core.Principal, op core.Op, _ *core.Record) error {
		n, _ := applies.LoadOrStore(op.OpID, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		if armed.Load() && cut.CompareAndSwap(false, true) {
			mu.Lock()
			for _, c := range conns {
				c.Close()
			}
			mu.Unlock()
		}
		return nil
	}})
	r := serve(t, svc, server.TransportConfig{})
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		conns = append(conns, nc)
		mu.Unlock()
		return nc, nil
	}
	c := dial(t, r.addr, "", &ogrpc.Options{DialOptions: []grpcgo.DialOption{grpcgo.WithContextDialer(dialer)}})
	if _, err := c.BatchLimits(t.Context()); err != nil { // the capabilities are cached before the cut
		t.Fatal(err)
	}
	ops := []core.Op{
		{OpID: "cut-1", Kind: "note", ID: "a", Type: core.OpUpsert, Payload: []byte(`{"v":1}`)},
		{OpID: "cut-2", Kind: "note", ID: "b", Type: core.OpUpsert, Payload: []byte(`{"v":2}`)},
	}
	armed.Store(true)
	_, err := c.Push(t.Context(), ops)
	if !errors.Is(err, core.ErrUnavailable) || !cut.Load() {
		t.Fatalf("push over a cut connection: %v (cut: %v), want ErrUnavailable", err, cut.Load())
	}
	res, err := c.Push(t.Context(), ops)
	if err != nil {
		t.Fatalf("re-sent push: %v", err)
	}
	for i, r := range res {
		if r.Status != core.StatusApplied || r.Record == nil {
			t.Fatalf("re-sent op %s: %+v", ops[i].OpID, r)
		}
	}
	for _, op := range ops {
		n, ok := applies.Load(op.OpID)
		if !ok || n.(*atomic.Int32).Load() != 1 {
			t.Errorf("op %s validated %v times, want 1", op.OpID, n)
		}
	}
	if rowsOf(t, svc, "note") != 2 {
		t.Errorf("want 2 rows")
	}
	mu.Lock()
	t.Logf("%d connections", len(conns))
	mu.Unlock()
}

// TestTokenRefresh: a call refused with Unauthenticated asks the token
// source once more, with refresh, and is sent again once.
func TestTokenRefresh(t *testing.T) {
	svc := authorityWithToken(t)
	r := serve(t, svc, server.TransportConfig{})
	var asked, refreshed atomic.Int32
	src := func(_ context.Context, refresh bool) (string, error) {
		asked.Add(1)
		if refresh {
			refreshed.Add(1)
			return "good", nil
		}
		return "stale", nil
	}
	c := dial(t, r.addr, "", &ogrpc.Options{Token: src})
	if _, err := c.Pull(t.Context(), core.PullRequest{Kind: "note"}); err != nil {
		t.Fatalf("pull with a stale token: %v", err)
	}
	if asked.Load() != 2 || refreshed.Load() != 1 {
		t.Errorf("asked %d times, refreshed %d; want 2 and 1", asked.Load(), refreshed.Load())
	}
	bad := dial(t, r.addr, "", &ogrpc.Options{Token: wire.StaticToken("bad")})
	if _, err := bad.Pull(t.Context(), core.PullRequest{Kind: "note"}); !errors.Is(err, core.ErrUnauthorized) {
		t.Errorf("pull with a refused token: %v, want ErrUnauthorized", err)
	}
	if _, err := bad.Subscribe(t.Context(), []string{"note"}); !errors.Is(err, core.ErrUnauthorized) {
		t.Errorf("subscribe with a refused token: %v, want ErrUnauthorized", err)
	}
}
