package websocket

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/offsync/offsync/core"
)

// The push path reads its frames in a few allocations per op: these bounds
// hold the micro-benchmarks' figures (frames_bench_test.go), with room.

// parseFrame and decodeOps: one string for each of an op's opId, id and
// editedAt (its kind and type share the previous op's), the payloads in one
// allocation per frame.
func TestParsePushFrameAllocs(t *testing.T) {
	ops := framesBenchPush()
	w := make([]wireOp, len(ops))
	for i := range ops {
		w[i] = encodeOp(&ops[i])
	}
	frame := appendPushFrame(nil, 7, w, "")
	data := make([]byte, len(frame))
	allocs := testing.AllocsPerRun(20, func() {
		copy(data, frame)
		f, _, _, err := parseFrame(data)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeOps(f.Ops, 1000); err != nil {
			t.Fatal(err)
		}
	})
	if per := allocs / float64(len(ops)); per > 3.5 {
		t.Errorf("%.2f allocations per op, want at most 3.5", per)
	}
}

// The ops parseFrame reads own their payloads: the socket's message can go.
func TestParsePushFrameCopiesPayloads(t *testing.T) {
	ops := framesBenchPush()[:3]
	w := make([]wireOp, len(ops))
	for i := range ops {
		w[i] = encodeOp(&ops[i])
	}
	data := appendPushFrame(nil, 7, w, "")
	f, _, _, err := parseFrame(data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeOps(f.Ops, 0)
	if err != nil {
		t.Fatal(err)
	}
	clear(data)
	for i := range got {
		if string(got[i].Payload) != string(ops[i].Payload) {
			t.Fatalf("op %d payload %q, want %q", i, got[i].Payload, ops[i].Payload)
		}
	}
}

// The client reads a results frame and settles its answers in three
// allocations per op (the op id, the record's id, the record), the records'
// bytes in two per frame.
func TestResultsFrameAllocs(t *testing.T) {
	ops, frame := framesBenchResults(t)
	allocs := testing.AllocsPerRun(20, func() {
		a, err := decodeAnswer(frame)
		if err != nil || len(a.Results) != len(ops) {
			t.Fatal(err)
		}
		slab := make([]byte, 0, len(frame))
		for n := range ops {
			if pr, err := verdict(&ops[n], &a.Results[n], &slab); err != nil || pr.Record == nil {
				t.Fatal(err)
			}
		}
	})
	if per := allocs / float64(len(ops)); per > 3.5 {
		t.Errorf("%.2f allocations per op, want at most 3.5", per)
	}
}

// The push path's frames are written into buffers of their size: the
// estimates hold for any op and result whose strings need no escapes.
func TestFrameSizes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		plain := rapid.StringMatching(`[a-zA-Z0-9_-]{1,40}`)
		stamp := time.Date(2026, 11, 24, 19, 41, 55, 123456000, time.UTC)
		at := func(label string) time.Time {
			if rapid.Bool().Draw(t, label) {
				return stamp
			}
			return time.Time{}
		}
		n := rapid.IntRange(0, 5).Draw(t, "n")
		ops := make([]core.Op, n)
		w := make([]wireOp, n)
		res := make([]core.PushResult, n)
		for i := range ops {
			ops[i] = core.Op{OpID: plain.Draw(t, "opid"), Kind: plain.Draw(t, "kind"), ID: plain.Draw(t, "id"),
				Type:    rapid.SampledFrom([]core.OpType{core.OpUpsert, core.OpDelete}).Draw(t, "type"),
				Payload: []byte(`{"a":1}`), BaseUpdatedAt: at("base"), EditedAt: at("edited"), Force: rapid.Bool().Draw(t, "force")}
			w[i] = encodeOp(&ops[i])
			res[i] = core.PushResult{OpID: ops[i].OpID, Status: rapid.SampledFrom([]core.PushStatus{core.StatusApplied,
				core.StatusConflict, core.StatusRejected, core.StatusRetry, core.StatusSkipped, core.StatusNotFound}).Draw(t, "status"),
				Reason: plain.Draw(t, "reason"), RetryAfter: time.Duration(rapid.Int64Range(0, 1e12).Draw(t, "retry"))}
			if res[i].Status == core.StatusApplied || res[i].Status == core.StatusConflict {
				res[i].Record = &core.Record{ID: ops[i].ID, UpdatedAt: stamp, DeletedAt: at("deleted"), EditedAt: at("redited"),
					Data: []byte(`{"a":1,"b":"x"}`)}
			}
		}
		tp := rapid.SampledFrom([]string{"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}).Draw(t, "tp")
		if b := appendPushFrame(nil, 1<<53, w, tp); len(b) > pushFrameSize(w, tp) {
			t.Fatalf("push frame of %d bytes, estimated %d: %s", len(b), pushFrameSize(w, tp), b)
		}
		b, err := appendResults(nil, 1<<53, ops, res)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > resultsFrameSize(ops, res) {
			t.Fatalf("results frame of %d bytes, estimated %d: %s", len(b), resultsFrameSize(ops, res), b)
		}
	})
}
