package websocket

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	ws "github.com/coder/websocket"

	"github.com/offsync/offsync/core"
)

// FuzzDecodeFrame feeds the server's frame decoder (parseFrame, and
// decodeOps for pushes, pullRequest for pulls and streams) arbitrary bytes.
// It must never panic; a frame is either refused with 1007, or answered
// with an error wrapping core.ErrInvalid (or ErrTooLarge for too many ops),
// or decoded into a request whose ops survive a round trip through their
// wire form, or into a credit or cancel naming a stream (no id of its own). The
// corpus in testdata/fuzz/FuzzDecodeFrame is replayed by go test; run it
// longer with
//
//	go test -run XXX -fuzz FuzzDecodeFrame -fuzztime 5m ./drivers/transport/websocket
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"t":"ping","id":1}`,
		`{"t":"pull","id":2,"kind":"todo","limit":10,"after":{"updated_at":"2026-11-24T19:41:55.123456Z","id":"a"}}`,
		`{"t":"pull","id":3,"kind":"todo","pageToken":"abc"}`,
		`{"t":"push","id":4,"ops":[{"opId":"o1","kind":"todo","id":"a","type":"upsert","payload":{"title":"x"},"baseUpdatedAt":"2026-11-24T19:41:55.123456Z","force":true}]}`,
		`{"t":"push","id":5,"ops":[{"opId":"o2","kind":"todo","id":"a","type":"delete"}]}`,
		`{"t":"get","id":6,"kind":"todo","rid":"a"}`,
		`{"t":"sub","id":7,"kinds":["todo"]}`,
		`{"t":"unsub","id":8,"sub":7}`,
		`{"t":"auth","id":9,"token":"tok"}`,
		`{"t":"push","id":1,"ops":[{"opId":"o","kind":"todo","id":"x","type":"upsert","payload":[1]}]}`,
		`[1,2]`, `{"t":"pull"`, `"x"`, `{"id":-1}`, `{"t":"push","id":1e3}`,
		`{"t":"pullPages","id":10,"kind":"todo","limit":500,"window":4,"after":{"updated_at":"2026-11-24T19:41:55.123456Z","id":"a"}}`,
		`{"t":"pullPages","id":11,"kind":"todo","window":0}`,
		`{"t":"credit","stream":10,"n":1}`,
		`{"t":"credit","stream":10,"n":-1}`,
		`{"t":"credit","id":12,"stream":0,"n":1}`,
		`{"t":"cancel","stream":10}`,
		`{"t":"cancel","stream":"10"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, id, closeCode, err := parseFrame(data)
		switch {
		case closeCode != 0:
			if closeCode != ws.StatusInvalidFramePayloadData || err == nil {
				t.Fatalf("close code %d (err %v), want 1007 with a reason", closeCode, err)
			}
			return
		case err != nil:
			if !errors.Is(err, core.ErrInvalid) || id < 0 {
				t.Fatalf("error %v (id %d) does not wrap core.ErrInvalid", err, id)
			}
			return
		}
		if fr.T == tCredit || fr.T == tCancel {
			if id != 0 || fr.Stream == nil || *fr.Stream < 1 || (fr.T == tCredit && (fr.N == nil || *fr.N < 1)) {
				t.Fatalf("%s decoded with id %d, stream %v, n %v", fr.T, id, fr.Stream, fr.N)
			}
			return
		}
		if id < 1 || fr.ID == nil || *fr.ID != id {
			t.Fatalf("decoded id %d from a frame whose id is %v", id, fr.ID)
		}
		if fr.T == tPull || fr.T == tPages {
			if _, err := pullRequest(&fr); err != nil && !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("pullRequest error %v does not wrap core.ErrInvalid", err)
			}
			if fr.T == tPages {
				w, err := streamWindow(&fr)
				if err != nil && !errors.Is(err, core.ErrInvalid) {
					t.Fatalf("streamWindow error %v does not wrap core.ErrInvalid", err)
				}
				if err == nil && (w < 1 || w > maxWindow) {
					t.Fatalf("window %d accepted", w)
				}
			}
			return
		}
		if fr.T != tPush {
			return
		}
		ops, err := decodeOps(fr.Ops, 1000)
		if err != nil {
			if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrTooLarge) {
				t.Fatalf("decodeOps error %v wraps neither ErrInvalid nor ErrTooLarge", err)
			}
			return
		}
		wire := make([]wireOp, len(ops))
		for i := range ops {
			op := &ops[i]
			if op.OpID == "" || op.Kind == "" || op.ID == "" {
				t.Fatalf("op %d decoded without opId, kind or id: %+v", i, op)
			}
			if op.Type == core.OpUpsert {
				var m map[string]json.RawMessage
				if json.Unmarshal(op.Payload, &m) != nil || m == nil {
					t.Fatalf("upsert %d with a payload that is not an object: %q", i, op.Payload)
				}
			}
			wire[i] = encodeOp(op)
		}
		b, err := json.Marshal(clientFrame{T: tPush, ID: &id, Ops: wire})
		if err != nil {
			t.Fatal(err)
		}
		fr2, _, _, err := parseFrame(b)
		if err != nil {
			t.Fatalf("re-encoded frame refused: %v", err)
		}
		ops2, err := decodeOps(fr2.Ops, 1000)
		if err != nil {
			t.Fatalf("re-encoded ops refused: %v", err)
		}
		for i := range ops {
			a, b := ops[i], ops2[i]
			if !sameJSON(a.Payload, b.Payload) {
				t.Fatalf("op %d payload %q became %q", i, a.Payload, b.Payload)
			}
			a.Payload, b.Payload = nil, nil
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("op %d changed in a round trip: %+v → %+v", i, a, b)
			}
		}
	})
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// FuzzDecodeAnswer: the client reads any frame as encoding/json reads it
// into an inFrame, and refuses what encoding/json refuses (decodeResults
// takes only the frames it reads the same).
func FuzzDecodeAnswer(f *testing.F) {
	for _, s := range []string{
		`{"t":"results","id":7,"results":[{"opId":"a","status":200,"record":{"id":"a","updated_at":"2026-11-24T19:41:55.123456Z","deleted_at":null,"n":1}}]}`,
		`{"t":"results","id":8,"results":[{"opId":"b","status":409,"current":{"id":"b","updated_at":"2026-11-24T19:41:55.123456Z","deleted_at":null},"error":"conflict"},{"opId":"c","status":422,"error":"rejected","message":"no","permanent":false},{"opId":"d","status":503,"error":"unavailable","message":"later","retryAfter":1.5}]}`,
		`{"t":"results","id":9,"results":[]}`,
		`{"t":"results","id":9,"results":[{"opId":"a","status":1e400}]}`,
		`{"t":"results","id":9,"results":[{"opId":"a","status":200,"record":[1]}]}`,
		`{"t":"results","id":9,"results":[{"OpId":"a","x":null}]}`,
		`{"t":"results","id":9,"results":[{"opId":"a","opId":"b"}]}`,
		`{"t":"results","id":1.5,"results":null}`,
		`{"t":"error","id":3,"status":429,"error":"rate_limited","message":"slow down","retryAfter":0.5}`,
		`{"t":"notice","sub":2,"kind":"todo","updated_at":"2026-11-24T19:41:55.123456Z","id":"a"}`,
		`{"t":"hello","protocol":1,"maxBatch":1000,"heartbeat":25000}`,
		`{"t":"results","id":9,"results":[{"opId":"\ud800"}]}`,
		"{\"t\":\"results\",\"id\":9,\"results\":[{\"opId\":\"\xff\"}]}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeAnswer(data)
		want := new(inFrame)
		werr := json.Unmarshal(data, want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("decodeAnswer error %v, encoding/json's %v", err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v\nwant %+v", got, want)
		}
	})
}
