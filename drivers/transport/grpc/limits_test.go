package grpc_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	ogrpc "github.com/offsync/offsync/drivers/transport/grpc"
	"github.com/offsync/offsync/server"
)

// fill pushes n records of about size bytes each to kind at the authority.
func fill(t *testing.T, svc *server.Service, kind string, n, size int) {
	t.Helper()
	ctx := core.WithPrincipal(t.Context(), core.Principal{})
	var ops []core.Op
	for i := range n {
		ops = append(ops, core.Op{OpID: fmt.Sprintf("%s-%d", kind, i), Kind: kind, ID: fmt.Sprintf("r%03d", i), Type: core.OpUpsert,
			Payload: []byte(fmt.Sprintf(`{"s":%q}`, strings.Repeat("x", size)))})
	}
	res, err := svc.Push(ctx, ops)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != core.StatusApplied {
			t.Fatalf("fill: %+v", r)
		}
	}
}

// walkAll pulls kind to the end and returns the page sizes.
func walkAll(t *testing.T, c core.Transport, kind string, limit int) (pages []int, total int) {
	t.Helper()
	req := core.PullRequest{Kind: kind, Limit: limit}
	for {
		p, err := c.Pull(t.Context(), req)
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		pages = append(pages, len(p.Records))
		total += len(p.Records)
		if p.NextPageToken == "" {
			return pages, total
		}
		req.PageToken = p.NextPageToken
	}
}

// TestPagesUnderMessageLimits: a page that would exceed the server's
// message limit is served with fewer rows, a page over the client's own
// receive limit is asked for again with fewer rows, a record that fits in
// no message is ErrTooLarge, and a push is split under the server's limit.
func TestPagesUnderMessageLimits(t *testing.T) {
	svc := newAuthority(t, nil)
	fill(t, svc, "big", 20, 4000)
	small := serve(t, svc, server.TransportConfig{Limits: server.Limits{MaxMessage: 32 << 10}})
	c := dial(t, small.addr, "", nil)
	pages, total := walkAll(t, c, "big", 20)
	if total != 20 || pages[0] >= 20 || pages[0] < 1 {
		t.Errorf("server-cut walk: pages %v, %d rows; want pages under 20 rows summing to 20", pages, total)
	}

	roomy := serve(t, svc, server.TransportConfig{})
	lc := dial(t, roomy.addr, "", &ogrpc.Options{MaxMessage: 16 << 10})
	pages, total = walkAll(t, lc, "big", 20)
	if total != 20 || pages[0] > 3 {
		t.Errorf("client-cut walk: pages %v, %d rows; want pages of at most 3 rows summing to 20", pages, total)
	}

	fill(t, svc, "huge", 1, 40<<10)
	if _, err := c.Pull(t.Context(), core.PullRequest{Kind: "huge"}); !errors.Is(err, core.ErrTooLarge) {
		t.Errorf("pull of a record over the message limit: %v, want ErrTooLarge", err)
	}

	var ops []core.Op
	for i := range 20 {
		ops = append(ops, core.Op{OpID: fmt.Sprint("split-", i), Kind: "split", ID: fmt.Sprint(i), Type: core.OpUpsert,
			Payload: []byte(fmt.Sprintf(`{"s":%q}`, strings.Repeat("y", 4000)))})
	}
	res, err := c.Push(t.Context(), ops)
	if err != nil {
		t.Fatalf("push of 80 KB under a 32 KB limit: %v", err)
	}
	for i, r := range res {
		if r.Status != core.StatusApplied {
			t.Fatalf("op %d: %+v", i, r)
		}
	}
}

// TestIdleSubscribeSurvivesHeartbeats: with a short heartbeat the server
// pings the idle connection many times; the stream stays up (no gap) and
// the next notice arrives on it.
func TestIdleSubscribeSurvivesHeartbeats(t *testing.T) {
	svc := newAuthority(t, nil)
	r := serve(t, svc, server.TransportConfig{Limits: server.Limits{Heartbeat: 50 * time.Millisecond}})
	c := dial(t, r.addr, "", nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch, err := c.Subscribe(ctx, []string{"note"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1 * time.Second) // twenty heartbeats of silence
	fill(t, svc, "note", 1, 10)
	n := <-ch
	if n.Gap || n.Kind != "note" || n.ID != "r000" {
		t.Errorf("after an idle second: %+v, want the notice of note/r000 on the same stream", n)
	}
}

// TestCapabilities mirrors REST's /health, with the served transports.
func TestCapabilities(t *testing.T) {
	svc := newAuthority(t, &server.Options{MaxBatch: 77, MaxLimit: 99})
	r := serve(t, svc, server.TransportConfig{
		Limits: server.Limits{MaxMessage: 1 << 20, Heartbeat: 20 * time.Second},
		Served: func() map[string]string { return map[string]string{"rest": "/", "grpc": "127.0.0.1:1"} },
	})
	c := dial(t, r.addr, "", nil)
	caps, err := c.Capabilities(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if caps.GetStatus() != "ok" || caps.GetProtocol() != 1 || strings.Join(caps.GetCapabilities(), ",") != "batch,events,get,stream-pull" ||
		caps.GetMaxBatch() != 77 || caps.GetMaxLimit() != 99 || caps.GetMaxMessage() != 1<<20 ||
		caps.GetHeartbeatMs() != 20000 || caps.GetKeepaliveMinTimeMs() != 10000 || caps.GetTransports()["grpc"] != "127.0.0.1:1" {
		t.Errorf("capabilities %v", caps)
	}
	bl, err := c.BatchLimits(t.Context())
	if err != nil || bl.MaxOps != 77 || bl.MaxLimit != 99 {
		t.Errorf("batch limits %+v, %v", bl, err)
	}
}

// TestOpeners: the registered names, the URL forms and unknown options.
func TestOpeners(t *testing.T) {
	if _, err := server.OpenServer(t.Context(), "grpc", newAuthority(t, nil), server.TransportConfig{Options: map[string]any{"bogus": 1}}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("server option bogus: %v, want ErrInvalid", err)
	}
	d, err := server.LookupTransport("grpc")
	if err != nil || d.Addr != "+1" || !d.OwnsListener() {
		t.Errorf("server half registration %+v, %v", d, err)
	}
	for _, u := range []string{"http://127.0.0.1:1", "grpc://", "grpc://h:1/path", "::"} {
		if _, err := core.OpenTransport(t.Context(), "grpc", u, nil); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("url %q: %v, want ErrInvalid", u, err)
		}
	}
	if _, err := core.OpenTransport(t.Context(), "grpc", "grpc://127.0.0.1:1", map[string]any{"nope": 1}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("client option nope: %v, want ErrInvalid", err)
	}
	tr, err := core.OpenTransport(t.Context(), "grpc", "grpcs://127.0.0.1:1", map[string]any{"token": "t", "timeout": "2s"})
	if err != nil {
		t.Fatal(err)
	}
	tr.(*ogrpc.Client).Close()
	tr, err = core.OpenTransport(t.Context(), "grpc", "grpc://127.0.0.1:1", map[string]any{"timeout": 0.2})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.(*ogrpc.Client).Close()
	if _, err := tr.Pull(t.Context(), core.PullRequest{Kind: "x"}); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("pull from a closed port: %v, want ErrUnavailable", err)
	}
}

// TestPlainAuthority: over an authority that is only a core.Transport, the
// capabilities list no events or get, and the client says so with
// errors.ErrUnsupported (the engine keeps its timer).
func TestPlainAuthority(t *testing.T) {
	plain := struct{ core.Transport }{newAuthority(t, nil)}
	r := serve(t, plain, server.TransportConfig{})
	c := dial(t, r.addr, "", nil)
	if _, err := c.Subscribe(t.Context(), nil); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("subscribe: %v, want ErrUnsupported", err)
	}
	if _, err := c.Get(t.Context(), "note", "a"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("get: %v, want ErrUnsupported", err)
	}
	res, err := c.Push(t.Context(), []core.Op{{OpID: "p1", Kind: "note", ID: "a", Type: core.OpUpsert, Payload: []byte(`{}`)}})
	if err != nil || res[0].Status != core.StatusApplied {
		t.Errorf("push: %v, %v", res, err)
	}
}
