package websocket

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	ws "github.com/coder/websocket"
	"pgregory.net/rapid"

	"github.com/offsync/offsync/core"
)

// The client reads a results frame with decodeResults when it has
// appendResults' layout, and with encoding/json otherwise: either way it
// reads what encoding/json reads, and ignores what encoding/json refuses.

// resultsMutations turn a results frame into frames the server does not
// write: other member names or kinds, unknown members, huge numbers,
// records that are not objects, broken JSON. Each replaces the first match
// of a pattern.
var resultsMutations = []struct{ re, new string }{
	{`^\{"t":"results",`, `{"t":"results","extra":{"a":[1,null]},`},
	{`^\{"t":"results",`, `{"t":"results", `},
	{`^\{"t":"results",`, `{"t":"results","t":"results",`},
	{`^\{"t":"results",`, `{"t":"error",`},
	{`"results":\[`, `"Results":[`},
	{`"results":\[`, `"results":null,"x":[`},
	{`"id":\d+`, `"id":"7"`},
	{`"id":\d+`, `"id":1.0`},
	{`"id":\d+`, `"id":-3`},
	{`"id":\d+`, `"id":99999999999999999999`},
	{`"id":\d+`, `"id":null`},
	{`\{"opId":`, `{"unknown":{"x":1},"opId":`},
	{`\{"opId":`, `{"OpId":`},
	{`\{"opId":`, `{"status":201,"opId":`},
	{`\{"opId":`, `{"opId":null,"opId":`},
	{`\{"opId":"[^"]*"`, `{"opId":null`},
	{`\{"opId":"[^"]*"`, `{"opId":7`},
	{`"status":`, `"Status":`},
	{`"status":\d+`, `"status":1e400`},
	{`"status":\d+`, `"status":1e3`},
	{`"status":\d+`, `"status":99999999999999999999`},
	{`"status":\d+`, `"status":2.5`},
	{`"status":\d+`, `"status":-0`},
	{`"status":\d+`, `"status":"200"`},
	{`"status":\d+`, `"status":null`},
	{`"status":\d+`, `"status":true`},
	{`"record":\{[^{}]*\}`, `"record":5`},
	{`"record":\{[^{}]*\}`, `"record":"x"`},
	{`"record":\{[^{}]*\}`, `"record":[1,2]`},
	{`"record":\{[^{}]*\}`, `"record":null`},
	{`"record":\{[^{}]*\}`, `"record":{"id":}`},
	{`"record":\{`, `"record":{"n":1e400,"big":123456789012345678901234567890,`},
	{`"record":\{`, `"record":{"a":1,"a":2,`},
	{`"current":\{[^{}]*\}`, `"current":true`},
	{`"error":"[^"]*"`, `"error":7`},
	{`"error":"[^"]*"`, `"error":null`},
	{`"message":"[^"]*"`, "\"message\":\"\xff\""},
	{`"message":"[^"]*"`, `"message":"\ud800"`},
	{`"retryAfter":[0-9.e-]+`, `"retryAfter":1e400`},
	{`"retryAfter":[0-9.e-]+`, `"retryAfter":1e-400`},
	{`"retryAfter":[0-9.e-]+`, `"retryAfter":"1"`},
	{`"retryAfter":[0-9.e-]+`, `"retryAfter":null`},
	{`"permanent":false`, `"permanent":0`},
	{`"permanent":false`, `"permanent":null`},
	{`"permanent":false`, `"permanent":true`},
	{`\]\}$`, `]} `},
	{`\]\}$`, `]}{}`},
	{`\]\}$`, `]`},
}

// mutate applies the mutation m to the first match in b.
func mutate(b []byte, m struct{ re, new string }) []byte {
	loc := regexp.MustCompile(m.re).FindIndex(b)
	if loc == nil {
		return b
	}
	return append(append(append([]byte(nil), b[:loc[0]]...), m.new...), b[loc[1]:]...)
}

// resultsFrame draws a results frame as the server writes it.
func resultsFrame(t *rapid.T) []byte {
	n := rapid.IntRange(0, 4).Draw(t, "n")
	ops := make([]core.Op, n)
	res := make([]core.PushResult, n)
	base := time.Date(2026, 11, 24, 19, 41, 55, 123456000, time.UTC)
	for i := range n {
		ops[i] = core.Op{OpID: text(t, "opid"), Kind: "todo", ID: text(t, "rid")}
		st := rapid.SampledFrom([]core.PushStatus{core.StatusApplied, core.StatusConflict, core.StatusRejected,
			core.StatusRetry, core.StatusSkipped, core.StatusNotFound}).Draw(t, "status")
		pr := core.PushResult{OpID: ops[i].OpID, Status: st, Reason: text(t, "reason"),
			Permanent:  rapid.Bool().Draw(t, "permanent"),
			RetryAfter: time.Duration(rapid.Int64Range(0, 5e9).Draw(t, "retry"))}
		if st == core.StatusApplied || (st == core.StatusConflict && rapid.Bool().Draw(t, "current")) {
			rec := core.Record{Kind: "todo", ID: ops[i].ID, UpdatedAt: base.Add(time.Duration(i) * time.Second),
				Data: json.RawMessage(rapid.SampledFrom([]string{`{}`, `{"title":"x","n":1}`,
					`{ "a" : [1, {"b":"}"}], "c": -1.5e3 }`, `{"\u00e9":"\ud83d\ude00","q":"\"\\"}`}).Draw(t, "data"))}
			if rapid.Bool().Draw(t, "edited") {
				rec.EditedAt = base
			}
			if rapid.Bool().Draw(t, "deleted") {
				rec.DeletedAt = base
			}
			pr.Record = &rec
		}
		res[i] = pr
	}
	b, err := appendResults(nil, rapid.Int64Range(1, 1<<53).Draw(t, "id"), ops, res)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeAnswerRef is decodeAnswer as it was: encoding/json alone.
func decodeAnswerRef(b []byte) (*inFrame, error) {
	f := new(inFrame)
	if err := json.Unmarshal(b, f); err != nil {
		return nil, err
	}
	return f, nil
}

func checkSameAnswer(t *rapid.T, b []byte) {
	got, err := decodeAnswer(b)
	want, werr := decodeAnswerRef(b)
	if (err == nil) != (werr == nil) {
		t.Fatalf("%s: decodeAnswer error %v, encoding/json's %v", b, err, werr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", b, got, want)
	}
}

func TestDecodeAnswerMatchesEncodingJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := resultsFrame(t)
		if _, ok := decodeResults(b); !ok && utf8.Valid(b) {
			t.Fatalf("a server's results frame was not taken: %s", b)
		}
		checkSameAnswer(t, b)
		m := rapid.SampledFrom(resultsMutations).Draw(t, "mutation")
		checkSameAnswer(t, mutate(b, m))
		checkSameAnswer(t, b[:rapid.IntRange(0, len(b)).Draw(t, "cut")])
	})
}

// Every mutation, on one frame of each kind of result.
func TestDecodeAnswerOddResultsFrames(t *testing.T) {
	frame := `{"t":"results","id":7,"results":[` +
		`{"opId":"a","status":200,"record":{"id":"a","updated_at":"2026-11-24T19:41:55.123456Z","deleted_at":null,"n":1}},` +
		`{"opId":"b","status":409,"current":{"id":"b","updated_at":"2026-11-24T19:41:55.123456Z","deleted_at":null},"error":"conflict"},` +
		`{"opId":"c","status":422,"error":"rejected","message":"no","permanent":false},` +
		`{"opId":"d","status":503,"error":"unavailable","message":"later","retryAfter":1.5}]}`
	if _, ok := decodeResults([]byte(frame)); !ok {
		t.Fatal("the frame was not taken")
	}
	for _, m := range resultsMutations {
		b := mutate([]byte(frame), m)
		got, err := decodeAnswer(b)
		want, werr := decodeAnswerRef(b)
		if (err == nil) != (werr == nil) || (err == nil && !reflect.DeepEqual(got, want)) {
			t.Errorf("%s:\n got %+v, %v\nwant %+v, %v", b, got, err, want, werr)
		}
	}
}

// fakeAuthority serves a socket that answers every push frame with the
// frame answer writes for it: the client's side of odd frames.
func fakeAuthority(t *testing.T, answer func(f *clientFrame) string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ws.Accept(w, r, &ws.AcceptOptions{Subprotocols: []string{Subprotocol}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		if c.Write(ctx, ws.MessageText, []byte(`{"t":"hello","protocol":1,"maxBatch":100}`)) != nil {
			return
		}
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			var f clientFrame
			if json.Unmarshal(b, &f) != nil || f.T != tPush || f.ID == nil {
				continue
			}
			if c.Write(ctx, ws.MessageText, []byte(answer(&f))) != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

// The client answers odd results frames as it did when encoding/json read
// them all: unknown members and other cases of names are read past; a
// record that is not an object is the op's retry; a frame encoding/json
// refuses (broken JSON, a status beyond int) is ignored, and the push
// waits for an answer until its deadline.
func TestClientOddResultsFrames(t *testing.T) {
	const rec = `{"id":"a","updated_at":"2026-11-24T19:41:55.123456Z","deleted_at":null,"n":1}`
	for _, tc := range []struct {
		name   string
		result string
		want   core.PushStatus // 0: Push fails, the frame was ignored
		data   string
	}{
		{"plain", `{"opId":"o1","status":200,"record":` + rec + `}`, core.StatusApplied, `{"n":1}`},
		{"unknown members", `{"opId":"o1","x":{"y":[1]},"status":200,"record":` + rec + `,"z":null}`, core.StatusApplied, `{"n":1}`},
		{"other case", `{"OpId":"o1","Status":200,"RECORD":` + rec + `}`, core.StatusApplied, `{"n":1}`},
		{"huge numbers in the record", `{"opId":"o1","status":200,"record":{"id":"a","updated_at":"2026-11-24T19:41:55.123456Z","deleted_at":null,"n":1e400,"m":123456789012345678901234567890}}`,
			core.StatusApplied, `{"n":1e400,"m":123456789012345678901234567890}`},
		{"record not an object", `{"opId":"o1","status":200,"record":[1,2]}`, core.StatusRetry, ""},
		{"record a string", `{"opId":"o1","status":200,"record":"a"}`, core.StatusRetry, ""},
		{"broken JSON", `{"opId":"o1","status":200,"record":{"id":}}`, 0, ""},
		{"status beyond int", `{"opId":"o1","status":1e400,"record":` + rec + `}`, 0, ""},
		{"status a string", `{"opId":"o1","status":"200","record":` + rec + `}`, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := fakeAuthority(t, func(f *clientFrame) string {
				return `{"t":"results","id":` + strconv.FormatInt(*f.ID, 10) + `,"results":[` + tc.result + `]}`
			})
			c := NewClient(url, nil)
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			res, err := c.Push(ctx, []core.Op{{OpID: "o1", Kind: "todo", ID: "a", Type: core.OpUpsert, Payload: json.RawMessage(`{"n":1}`)}})
			if tc.want == 0 {
				if err == nil || !errors.Is(err, core.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Push = %+v, %v; want the frame ignored until the deadline", res, err)
				}
				return
			}
			if err != nil || len(res) != 1 || res[0].Status != tc.want {
				t.Fatalf("Push = %+v, %v; want %v", res, err, tc.want)
			}
			if tc.want == core.StatusApplied && (res[0].Record == nil || res[0].Record.ID != "a" || string(res[0].Record.Data) != tc.data) {
				t.Fatalf("record %+v, want id a and data %s", res[0].Record, tc.data)
			}
			if tc.want == core.StatusRetry && !strings.Contains(res[0].Reason, "unreadable answer") {
				t.Fatalf("reason %q", res[0].Reason)
			}
		})
	}
}

// A payload that is not a JSON object is its op's own permanent rejection,
// decided by the client: it never reaches the socket, and the other ops
// go through. What json.Valid takes (duplicate names, invalid UTF-8) is
// sent.
func TestClientRefusesMalformedPayloads(t *testing.T) {
	var mu sync.Mutex
	var sent []wireOp
	url := fakeAuthority(t, func(f *clientFrame) string {
		mu.Lock()
		sent = append(sent, f.Ops...)
		mu.Unlock()
		ops := make([]core.Op, len(f.Ops))
		res := make([]core.PushResult, len(f.Ops))
		for i, w := range f.Ops {
			ops[i] = core.Op{OpID: w.OpID}
			res[i] = core.PushResult{OpID: w.OpID, Status: core.StatusApplied, Record: &core.Record{Kind: w.Kind, ID: w.ID,
				UpdatedAt: time.Date(2026, 11, 24, 19, 41, 55, 0, time.UTC), Data: json.RawMessage(`{}`)}}
		}
		b, err := appendResults(nil, *f.ID, ops, res)
		if err != nil {
			t.Error(err)
		}
		return string(b)
	})
	c := NewClient(url, nil)
	defer c.Close()
	payloads := []string{`{"a":1}`, `{"a":`, `{"a":1}x`, `{"a":1,"a":2}`, "{\"a\":\"\xff\"}", `{"a":"\x"}`, `[1]`, ` {"b":2} `}
	good := []bool{true, false, false, true, true, false, false, true}
	var ops []core.Op
	for i, p := range payloads {
		ops = append(ops, core.Op{OpID: "o" + strconv.Itoa(i), Kind: "todo", ID: "r" + strconv.Itoa(i), Type: core.OpUpsert, Payload: json.RawMessage(p)})
	}
	res, err := c.Push(t.Context(), ops)
	if err != nil || len(res) != len(ops) {
		t.Fatalf("Push = %+v, %v", res, err)
	}
	n := 0
	for i, r := range res {
		switch {
		case good[i] && r.Status != core.StatusApplied:
			t.Errorf("op %d (%s): %+v, want applied", i, payloads[i], r)
		case !good[i] && (r.Status != core.StatusRejected || !r.Permanent || r.Reason != "payload is not a JSON object"):
			t.Errorf("op %d (%s): %+v, want its own permanent rejection", i, payloads[i], r)
		}
		if good[i] {
			n++
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent) != n {
		t.Fatalf("the socket carried %d ops, want %d", len(sent), n)
	}
	for _, w := range sent {
		if !json.Valid(w.Payload) {
			t.Errorf("op %s reached the socket with payload %s", w.OpID, w.Payload)
		}
	}
}

// Frames with a member twice, at each level the fast paths read, are read
// as encoding/json reads them (the last one wins; two ops or results arrays
// are not joined); a payload's or record's own duplicates are kept as sent.
func TestFastPathsDuplicateMembers(t *testing.T) {
	const op = `{"opId":"o1","kind":"todo","id":"a","type":"upsert","payload":{"n":1},"editedAt":"2026-11-24T19:41:55.123456Z"}`
	for _, b := range []string{
		`{"t":"push","id":1,"ops":[` + op + `],"ops":[` + op + `]}`,
		`{"t":"push","id":1,"id":2,"ops":[` + op + `]}`,
		`{"t":"push","t":"push","id":1,"ops":[` + op + `]}`,
		`{"t":"push","id":1,"ops":[` + op + `],"traceparent":"x","traceparent":"y"}`,
		`{"t":"push","id":1,"ops":[{"opId":"o1","opId":"o2","kind":"todo","id":"a","type":"delete"}]}`,
		`{"t":"push","id":1,"ops":[{"opId":"o1","kind":"todo","kind":"k","id":"a","type":"delete"}]}`,
		`{"t":"push","id":1,"ops":[{"opId":"o1","kind":"todo","id":"a","type":"upsert","payload":{"n":1},"payload":{"n":2}}]}`,
		`{"t":"push","id":1,"ops":[{"opId":"o1","kind":"todo","id":"a","type":"delete","force":true,"force":false}]}`,
		`{"t":"push","id":1,"ops":[{"opId":"o1","kind":"todo","id":"a","type":"upsert","payload":{"n":1,"n":2}}]}`,
	} {
		got, ok := parsePushFrame([]byte(b))
		var want clientFrame
		err := json.Unmarshal([]byte(b), &want)
		if ok && (err != nil || !reflect.DeepEqual(got, want)) {
			t.Errorf("%s:\n got %+v\nwant %+v (%v)", b, got, want, err)
		}
		if strings.Contains(b, `"n":1,"n":2`) && !ok {
			t.Errorf("%s: a payload's own duplicates sent it to encoding/json", b)
		}
	}
	const rec = `{"id":"a","updated_at":"2026-11-24T19:41:55.123456Z","deleted_at":null}`
	for _, b := range []string{
		`{"t":"results","id":1,"results":[{"opId":"o1","status":200,"record":` + rec + `}],"results":[{"opId":"o2","status":200,"record":` + rec + `}]}`,
		`{"t":"results","id":1,"id":2,"results":[]}`,
		`{"t":"results","id":1,"results":[{"opId":"o1","status":200,"status":409,"record":` + rec + `}]}`,
		`{"t":"results","id":1,"results":[{"opId":"o1","status":422,"permanent":true,"permanent":false}]}`,
		`{"t":"results","id":1,"results":[{"opId":"o1","status":200,"record":{"id":"a","updated_at":"2026-11-24T19:41:55.123456Z","deleted_at":null,"n":1,"n":2}}]}`,
	} {
		f, ok := decodeResults([]byte(b))
		want, err := decodeAnswerRef([]byte(b))
		if ok && (err != nil || !reflect.DeepEqual(f, want)) {
			t.Errorf("%s:\n got %+v\nwant %+v (%v)", b, f, want, err)
		}
		if strings.Contains(b, `"n":1,"n":2`) && !ok {
			t.Errorf("%s: a record's own duplicates sent it to encoding/json", b)
		}
	}
}
