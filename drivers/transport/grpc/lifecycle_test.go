package grpc_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/offsync/offsync/core"
	syncv1 "github.com/offsync/offsync/drivers/transport/grpc/proto/offsync/sync/v1"
	"github.com/offsync/offsync/server"
)

// stuck is an authority whose pulls wait for their ctx.
type stuck struct {
	core.Transport
	entered chan struct{}
}

func (s stuck) Pull(ctx context.Context, _ core.PullRequest) (core.Page, error) {
	close(s.entered)
	<-ctx.Done()
	return core.Page{}, ctx.Err()
}

// TestShutdown: health says SERVING; Shutdown ends a Subscribe stream with
// Unavailable (going away) and lets Serve return; a call that does not end
// by itself is cut when Shutdown's ctx ends.
func TestShutdown(t *testing.T) {
	svc := newAuthority(t, nil)
	r := serveOn(t, svc, "127.0.0.1:0", server.TransportConfig{})
	conn, raw := rawConn(t, r.addr)
	hc := healthpb.NewHealthClient(conn)
	for _, name := range []string{"", "offsync.sync.v1.Sync"} {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: name})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v, %v", name, resp, err)
		}
	}
	s, err := raw.Subscribe(t.Context(), &syncv1.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Header(); err != nil {
		t.Fatal(err)
	}
	r.stop(t)
	_, err = s.Recv()
	wantStatus(t, "subscribe at shutdown", err, codes.Unavailable, "offsync: unavailable, retry later: the server is shutting down", "unavailable")

	st := stuck{Transport: svc, entered: make(chan struct{})}
	r2 := serveOn(t, st, "127.0.0.1:0", server.TransportConfig{})
	_, raw2 := rawConn(t, r2.addr)
	done := make(chan error, 1)
	go func() {
		_, err := raw2.Pull(t.Context(), &syncv1.PullRequest{Kind: "note"})
		done <- err
	}()
	<-st.entered
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := r2.ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown with a call that never ends: %v, want the deadline", err)
	}
	if err := <-r2.done; err != nil {
		t.Errorf("serve after a forced stop: %v", err)
	}
	if err := <-done; err == nil {
		t.Errorf("the cut call succeeded")
	}
}

// TestReflection: the service can be discovered by tools (grpcurl) without
// a token.
func TestReflection(t *testing.T) {
	svc := newAuthority(t, &server.Options{Authenticate: func(context.Context, string) (core.Principal, error) {
		return core.Principal{}, core.ErrUnauthorized
	}})
	r := serve(t, svc, server.TransportConfig{})
	conn, _ := rawConn(t, r.addr)
	s, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sv := range resp.GetListServicesResponse().GetService() {
		names = append(names, sv.GetName())
	}
	if !slices.Contains(names, "offsync.sync.v1.Sync") || !slices.Contains(names, "grpc.health.v1.Health") {
		t.Errorf("reflection lists %v", names)
	}
	s.CloseSend()
}
