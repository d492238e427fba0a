package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// TestStatsCounts checks the exact figures of a scripted session: ops
// applied, in conflict, rejected by the Validate hook, skipped and of a kind
// not served, pulled rows, per transport, and a subscriber's notices.
func TestStatsCounts(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, &server.Options{
		Validate: func(ctx context.Context, p core.Principal, op core.Op, cur *core.Record) error {
			if op.ID == "bad" {
				return fmt.Errorf("%w: no bad ids", core.ErrRejected)
			}
			return nil
		},
	})
	rest := server.WithTransport(ctx, "rest")
	ws := server.WithTransport(ctx, "websocket")

	subCtx, cancel := context.WithCancel(ws)
	ch, err := svc.Subscribe(subCtx, []string{"note"})
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.Stats().Transports["websocket"].ActiveSubscribers; got != 1 {
		t.Fatalf("active subscribers %d, want 1", got)
	}

	a := mustApply(t, rest, svc, upsert("o1", "note", "a", `{"t":1}`, time.Time{}))
	res := push(t, rest, svc,
		upsert("o2", "note", "a", `{"t":2}`, time.Time{}),   // create over a row: conflict
		upsert("o3", "note", "a", `{"t":3}`, a.UpdatedAt),   // same record after a failed op: skipped
		upsert("o4", "note", "bad", `{"t":4}`, time.Time{}), // rejected by Validate
		upsert("o5", "task", "x", `{"t":5}`, time.Time{}),   // applied
		upsert("o6", "nope", "y", `{}`, time.Time{}),        // kind not served: rejected
	)
	want := []core.PushStatus{core.StatusConflict, core.StatusSkipped, core.StatusRejected, core.StatusApplied, core.StatusRejected}
	for i, w := range want {
		wantStatus(t, res[i], w)
	}
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no notice")
	}
	if n := len(pullAll(t, ws, svc, "note", 1)); n != 1 {
		t.Fatalf("pulled %d notes, want 1", n)
	}
	if n := len(pullAll(t, ctx, svc, "task", 10)); n != 1 {
		t.Fatalf("pulled %d tasks, want 1", n)
	}
	if _, err := svc.Pull(rest, core.PullRequest{Kind: "nope"}); !errors.Is(err, core.ErrUnknownKind) {
		t.Fatalf("pull of an unknown kind: %v", err)
	}
	getRec(t, ctx, svc, "note", "a")

	st := svc.Stats()
	r := st.Transports["rest"]
	if r.Requests != (server.RequestCounts{Push: 2, Pull: 1, Failed: 1}) {
		t.Errorf("rest requests %+v", r.Requests)
	}
	if r.PushLatency.Count != 2 {
		t.Errorf("rest push latency count %d, want 2", r.PushLatency.Count)
	}
	if got := st.Transports["websocket"].Requests; got != (server.RequestCounts{Pull: 1, Subscribe: 1}) {
		t.Errorf("websocket requests %+v", got)
	}
	if got := st.Transports[server.TransportDirect].Requests; got != (server.RequestCounts{Pull: 1, Get: 1}) {
		t.Errorf("direct requests %+v", got)
	}
	if got, want := st.Kinds["note"], (server.KindStats{Applied: 1, Conflict: 1, Skipped: 1, Rejected: 1, Pulled: 1, Pages: 1}); got != want {
		t.Errorf("note: %+v, want %+v", got, want)
	}
	if got, want := st.Kinds["task"], (server.KindStats{Applied: 1, Pulled: 1, Pages: 1}); got != want {
		t.Errorf("task: %+v, want %+v", got, want)
	}
	if got, want := st.Kinds[server.OtherKind], (server.KindStats{Rejected: 1}); got != want {
		t.Errorf("%s: %+v, want %+v", server.OtherKind, got, want)
	}
	if _, ok := st.Kinds["nope"]; ok {
		t.Error("a kind not served has a label")
	}
	if st.NoticesSent < 1 || st.Transports["websocket"].NoticesSent != st.NoticesSent {
		t.Errorf("notices sent %d, websocket %d", st.NoticesSent, st.Transports["websocket"].NoticesSent)
	}
	if _, err := json.Marshal(st); err != nil {
		t.Fatalf("snapshot does not encode: %v", err)
	}

	cancel()
	for range ch {
	}
	// The pump has deregistered once the channel is closed.
	if got := svc.Stats().ActiveSubscribers; got != 0 {
		t.Fatalf("active subscribers %d after cancel, want 0", got)
	}
}

// TestStatsDynamicKindsBounded checks that dynamic kinds beyond
// StatsDynamicKinds share the OtherKind label.
func TestStatsDynamicKindsBounded(t *testing.T) {
	ctx := t.Context()
	svc, _ := newService(t, &server.Options{DynamicKinds: regexp.MustCompile(`^d[0-9]+$`)})
	n := server.StatsDynamicKinds + 3
	for i := range n {
		mustApply(t, ctx, svc, upsert(fmt.Sprint("o", i), fmt.Sprint("d", i), "x", `{}`, time.Time{}))
	}
	st := svc.Stats()
	if len(st.Kinds) != server.StatsDynamicKinds+1 {
		t.Fatalf("%d kind labels, want %d", len(st.Kinds), server.StatsDynamicKinds+1)
	}
	if got := st.Kinds[server.OtherKind].Applied; got != 3 {
		t.Fatalf("%s applied %d, want 3", server.OtherKind, got)
	}
	if got := st.Kinds["d0"].Applied; got != 1 {
		t.Fatalf("d0 applied %d, want 1", got)
	}
}
