package websocket

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// The push path's frame work alone, without sockets or stores: a push
// frame of 500 ops read by the server, the results frame answering it read
// by the client, and the client's check of the ops it sends. The ops are
// the bench's items (about 215 bytes of payload each).

const framesBenchOps = 500

func framesBenchPush() []core.Op {
	edited := time.Date(2026, 11, 24, 19, 41, 55, 123456000, time.UTC)
	ops := make([]core.Op, framesBenchOps)
	for i := range ops {
		payload, _ := json.Marshal(map[string]any{
			"title": fmt.Sprintf("item number %07d of the benchmark data set", i),
			"body":  "a body of text that stands for what an application keeps beside the title of a record, about one hundred bytes",
			"count": i, "done": i%3 == 0,
		})
		ops[i] = core.Op{OpID: fmt.Sprintf("019ab3c4d5e6-%012d", i), Kind: "item", ID: fmt.Sprintf("i%07d", i),
			Type: core.OpUpsert, Payload: payload, EditedAt: edited}
	}
	return ops
}

// framesBenchResults returns the ops of framesBenchPush and the results
// frame of their push, every op applied.
func framesBenchResults(tb testing.TB) ([]core.Op, []byte) {
	ops := framesBenchPush()
	stamp := time.Date(2026, 11, 24, 19, 41, 56, 1000, time.UTC)
	res := make([]core.PushResult, len(ops))
	for i := range ops {
		res[i] = core.PushResult{OpID: ops[i].OpID, Status: core.StatusApplied, Record: &core.Record{Kind: "item",
			ID: ops[i].ID, UpdatedAt: stamp, EditedAt: ops[i].EditedAt, Data: ops[i].Payload}}
	}
	frame, err := appendResults(nil, 7, ops, res)
	if err != nil {
		tb.Fatal(err)
	}
	return ops, frame
}

// BenchmarkParsePushFrame: the server reads a push frame (parseFrame) and
// checks its ops (decodeOps).
func BenchmarkParsePushFrame(b *testing.B) {
	ops := framesBenchPush()
	w := make([]wireOp, len(ops))
	for i := range ops {
		w[i] = encodeOp(&ops[i])
	}
	frame := appendPushFrame(nil, 7, w, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		data := append([]byte(nil), frame...) // the socket hands over a fresh message
		f, id, code, err := parseFrame(data)
		if err != nil || code != 0 || id != 7 {
			b.Fatal(code, err)
		}
		got, err := decodeOps(f.Ops, 1000)
		if err != nil || len(got) != len(ops) {
			b.Fatal(err)
		}
	}
}

// BenchmarkResultsFrame: the client reads the results frame of a push of
// 500 applied ops and turns each answer into its PushResult.
func BenchmarkResultsFrame(b *testing.B) {
	ops, frame := framesBenchResults(b)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		a, err := decodeAnswer(frame)
		if err != nil || string(a.ID) != "7" || a.T != tResults || len(a.Results) != len(ops) {
			b.Fatal("unread")
		}
		size := 0 // as pushBatch sizes it
		for n := range a.Results {
			size += len(a.Results[n].Record) + len(a.Results[n].Current)
		}
		slab := make([]byte, 0, size)
		for n := range ops {
			pr, err := verdict(&ops[n], &a.Results[n], &slab)
			if err != nil || pr.Status != core.StatusApplied || pr.Record == nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCheckOp: the client's check of the ops of one push.
func BenchmarkCheckOp(b *testing.B) {
	ops := framesBenchPush()
	b.ReportAllocs()
	for b.Loop() {
		for i := range ops {
			if _, ok := checkOp(&ops[i]); !ok {
				b.Fatal("refused")
			}
		}
	}
}
