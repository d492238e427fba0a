package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// Options.Hooks reaches the write path: AfterStamp sees each applied op's
// version with the kind's lock held, or before the transaction in the
// stamp-before-lock variant.
func TestOptionsHooksAfterStamp(t *testing.T) {
	for _, broken := range []bool{false, true} {
		type call struct {
			kind, id string
			v        time.Time
			locked   bool
		}
		var calls []call
		svc, _ := newService(t, &server.Options{Clock: core.NewManualClock(t0), Hooks: &server.Hooks{
			StampBeforeLock: broken,
			AfterStamp: func(ctx context.Context, kind, id string, v time.Time, locked bool) {
				calls = append(calls, call{kind, id, v, locked})
			},
		}})
		ctx := t.Context()
		res := push(t, ctx, svc, upsert("o1", "task", "t1", `{"a":1}`, time.Time{}), upsert("o2", "note", "n1", `{"a":1}`, time.Time{}))
		wantStatus(t, res[0], core.StatusApplied)
		wantStatus(t, res[1], core.StatusApplied)
		want := []call{{"task", "t1", res[0].Record.UpdatedAt, !broken}, {"note", "n1", res[1].Record.UpdatedAt, !broken}}
		if len(calls) != len(want) {
			t.Fatalf("broken=%v: %d hook calls, want %d", broken, len(calls), len(want))
		}
		for i := range want {
			if calls[i].kind != want[i].kind || calls[i].id != want[i].id || !calls[i].v.Equal(want[i].v) || calls[i].locked != want[i].locked {
				t.Errorf("broken=%v: hook call %d = %+v, want %+v", broken, i, calls[i], want[i])
			}
		}
	}
}
