package rest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/rest"
)

// streamCutter lets a test end the current /events response from the
// server side, as a proxy or a restart would.
type streamCutter struct {
	next    http.Handler
	streams chan context.CancelFunc
}

func (s *streamCutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/events" {
		s.next.ServeHTTP(w, r)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	s.streams <- cancel
	s.next.ServeHTTP(w, r.WithContext(ctx))
}

func recvNotice(t *testing.T, ch <-chan core.Notice) core.Notice {
	t.Helper()
	select {
	case n, ok := <-ch:
		if !ok {
			t.Fatal("notice channel closed")
		}
		return n
	case <-time.After(testTimeout):
		t.Fatal("no notice")
	}
	return core.Notice{}
}

func TestSubscribeNoticesAndGapAfterReconnect(t *testing.T) {
	svc := newAuthority(t, nil)
	cut := &streamCutter{next: rest.NewHandler(svc, nil), streams: make(chan context.CancelFunc, 4)}
	srv, _ := serve(t, cut)
	c := rest.NewClient(srv.URL, &rest.Options{ReconnectDelay: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := c.Subscribe(ctx, []string{"todo"})
	if err != nil {
		t.Fatal(err)
	}
	first := <-cut.streams
	// In force on return: a push right now is announced.
	r := mustPush(t, c, upsert("1", "todo", "a", `{}`))[0]
	n := recvNotice(t, ch)
	if n.Kind != "todo" || n.ID != "a" || !n.UpdatedAt.Equal(r.Record.UpdatedAt) || n.Gap {
		t.Fatalf("notice: %+v", n)
	}
	// Another kind is not announced; the next todo change is.
	mustPush(t, c, upsert("2", "other", "z", `{}`))
	r = mustPush(t, c, upsert("3", "todo", "b", `{}`))[0]
	if n := recvNotice(t, ch); n.Kind != "todo" || n.ID != "b" {
		t.Fatalf("notice: %+v", n)
	}
	// Cut the stream: the client reconnects and says there was a gap.
	first()
	<-cut.streams
	if n := recvNotice(t, ch); !n.Gap {
		t.Fatalf("want a gap notice, got %+v", n)
	}
	r = mustPush(t, c, upsert("4", "todo", "c", `{}`))[0]
	if n := recvNotice(t, ch); n.Kind != "todo" || n.ID != "c" || !n.UpdatedAt.Equal(r.Record.UpdatedAt) {
		t.Fatalf("after reconnect: %+v", n)
	}
	// Cancelling the subscription closes the channel.
	cancel()
	for range ch {
	}
}

func TestSubscribeUnknownKind(t *testing.T) {
	s := newStack(t, nil, nil)
	_, err := s.client.Subscribe(context.Background(), []string{"Bad-Kind"})
	if err == nil {
		t.Fatal("subscribed to an unknown kind")
	}
	if !errorsIs(err, core.ErrUnknownKind) {
		t.Fatalf("err: %v", err)
	}
}
