package rest

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
)

// batchCases are bodies the decoders must treat alike: the edge cases of
// encoding/json's strict decoding (folding, nulls, duplicates, wrong types)
// and of the checks after it.
func batchCases() []string {
	op := `"opId":"o","kind":"todo","id":"n"`
	del := `{` + op + `,"type":"delete"}`
	return []string{
		// well-formed
		`{"ops":[]}`, ` {"ops":[]} `, "\t{\n\"ops\" : [ ] }\r\n",
		`{"ops":[` + del + `]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"a":{"b":[1,{"c":null}]},"s":"}\"]"}}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"id":"n","a":1,"updated_at":null,"edited_at":"2026-01-01T00:00:00Z"},"force":true,"baseUpdatedAt":"2026-01-01T00:00:00.000001Z","editedAt":"2026-01-02T00:00:00Z"}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"_baseUpdatedAt":"2026-01-01T00:00:00Z"},"baseUpdatedAt":"2026-01-01T00:00:00Z"}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"_baseUpdatedAt":"2026-01-01T00:00:00Z"},"baseUpdatedAt":"2026-01-01T00:00:01Z"}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"_baseUpdatedAt":"2026-01-01T00:00:00Z"}}]}`,
		`{"ops":[{"type":"delete","id":"n","kind":"todo","opId":"o","force":false}]}`,
		`{"ops":[{"opId":"a","kind":"todo","id":"1","type":"delete"},{"opId":"b","kind":"todo","id":"2","type":"delete"},{"opId":"c","kind":"note","id":"3","type":"delete"}]}`,
		// unknown members
		`{"ops":[{` + op + `,"type":"delete","extra":1}]}`,
		`{"ops":[],"x":1}`, `{"x":1,"ops":[]}`, `{"x":null}`,
		`{"ops":[{` + op + `,"type":"upsert","extra":2,"payload":{"a":1},"baseUpdatedAt":1}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"a":1},"baseUpdatedAt":1,"extra":2}]}`,
		`{"ops":[{` + op + `,"type":"delete","BaseUpdatedAt":"2026-01-01T00:00:00Z","edited_at":null}]}`,
		// case folding and escaped names
		`{"OPS":[{"OPID":"o","Kind":"todo","ID":"n","Type":"delete"}]}`,
		`{"Ops":[{"opid":"o","KIND":"todo","Id":"n","tYPE":"delete","FORCE":true,"PayLoad":null,"EDITEDAT":null,"baseupdatedat":null}]}`,
		`{"opſ":[{"opId":"o","\u212aind":"todo","id":"n","type":"delete","baſeUpdatedAt":"2026-01-01T00:00:00Z"}]}`,
		`{"ops":[{"opId":"o","kind":"todo","ıd":"n","type":"delete"}]}`,
		`{"\u006fps":[{"\u006fpId":"o","kin\u0064":"todo","id":"n","type":"delete"}]}`,
		`{"\u004fPS":[]}`,
		// duplicate members
		`{"ops":[{` + op + `,"type":"delete","kind":"a","kind":"b"}]}`,
		`{"ops":[{` + op + `,"type":"delete","kind":"a","KIND":"b"}]}`,
		`{"ops":[` + del + `],"ops":[]}`,
		`{"ops":[` + del + `],"OPS":null}`,
		`{"ops":null,"ops":[` + del + `]}`,
		`{"ops":[` + del + `,{"opId":"p","kind":"todo","id":"m","type":"delete"}],"ops":[{"opId":"q"}]}`,
		`{"ops":[` + del + `,{"opId":"p","kind":"todo","id":"m","type":"delete"}],"ops":[{"opId":"q"}],"ops":[{},{}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"a":1},"payload":null}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":null,"payload":{"a":1}}]}`,
		`{"ops":[{` + op + `,"type":"delete","baseUpdatedAt":"2026-01-01T00:00:00Z","baseUpdatedAt":null}]}`,
		`{"ops":[{` + op + `,"type":"delete","baseUpdatedAt":null,"baseUpdatedAt":"x"}]}`,
		`{"ops":[{` + op + `,"type":"delete","force":true,"force":false}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"a":1,"a":2}}]}`,
		// nulls
		`{"ops":[{"opId":null,"kind":null,"id":null,"type":null,"payload":null,"baseUpdatedAt":null,"editedAt":null,"force":null}]}`,
		`{"ops":[{` + op + `,"kind":null,"type":"delete","force":true,"force":null}]}`,
		`{"ops":[{` + op + `,"type":"delete","opId":null}]}`,
		`{"ops":[null]}`, `{"ops":null}`, `{}`, `{"ops":[` + del + `,null]}`,
		// wrong types
		`{"ops":[{` + op + `,"type":"delete","opId":7}]}`,
		`{"ops":[{` + op + `,"type":"delete","kind":true}]}`,
		`{"ops":[{` + op + `,"type":"delete","id":["n"]}]}`,
		`{"ops":[{` + op + `,"type":{"t":"delete"}}]}`,
		`{"ops":[{` + op + `,"type":"delete","baseUpdatedAt":1767225600}]}`,
		`{"ops":[{` + op + `,"type":"delete","editedAt":false}]}`,
		`{"ops":[{` + op + `,"type":"delete","force":"true"}]}`,
		`{"ops":[{` + op + `,"type":"delete","force":1}]}`,
		`{"ops":[{` + op + `,"type":"delete","force":{}}]}`,
		`{"ops":{}}`, `{"ops":[1]}`, `{"ops":["x"]}`, `{"ops":[[]]}`, `{"ops":"x"}`, `{"ops":true}`, `{"ops":0}`,
		`{"ops":[{` + op + `,"type":"delete","opId":7},{"x":1}]}`,
		`{"ops":[` + del + `,{"x":1}],"y":2}`,
		// payload types
		`{"ops":[{` + op + `,"type":"upsert","payload":[1]}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":"{}"}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":5}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{}}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"_x":1}}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"id":"other"}}]}`,
		`{"ops":[{` + op + `,"type":"upsert","payload":{"id":7}}]}`,
		`{"ops":[{` + op + `,"type":"delete","payload":{}}]}`,
		`{"ops":[{` + op + `,"type":"delete","payload":0}]}`,
		`{"ops":[{` + op + `,"type":"delete","payload":null}]}`,
		// checks after decoding
		`{"ops":[{"opId":"","kind":"todo","id":"n","type":"delete"}]}`,
		`{"ops":[{"opId":"a b","kind":"todo","id":"n","type":"delete"}]}`,
		`{"ops":[{"opId":"` + strings.Repeat("k", 256) + `","kind":"todo","id":"n","type":"delete"}]}`,
		`{"ops":[{"opId":"o","kind":"","id":"n","type":"delete"}]}`,
		`{"ops":[{"opId":"o","kind":"batch","id":"n","type":"delete"}]}`,
		`{"ops":[{"opId":"o","kind":"todo","id":"","type":"delete"}]}`,
		`{"ops":[{` + op + `,"type":"patch"}]}`, `{"ops":[{` + op + `,"type":"Upsert"}]}`, `{"ops":[{` + op + `}]}`,
		`{"ops":[{` + op + `,"type":"upsert"}]}`,
		`{"ops":[{` + op + `,"type":"delete","baseUpdatedAt":"x"}]}`,
		`{"ops":[{` + op + `,"type":"delete","baseUpdatedAt":""}]}`,
		`{"ops":[{` + op + `,"type":"delete","editedAt":"2026-01-01T00:00:00.0000001Z"}]}`,
		`{"ops":[` + del + `,` + del + `]}`,
		`{"ops":[` + strings.Repeat(del+`,`, 3) + `{"opId":"p","kind":"todo","id":"n","type":"delete"}]}`,
		// escapes and UTF-8 in values
		`{"ops":[{"opId":"\u006f","kind":"t\u00e9","id":"\ud83d\ude00","type":"\u0064elete"}]}`,
		`{"ops":[{"opId":"o","kind":"todo","id":"\ud800","type":"delete"}]}`,
		"{\"ops\":[{\"opId\":\"o\",\"kind\":\"t\xffo\",\"id\":\"n\xc3\",\"type\":\"delete\"}]}",
		"{\"ops\":[{\"opId\":\"o\xff\",\"kind\":\"todo\",\"id\":\"n\",\"type\":\"delete\"}]}",
		"{\"ops\":[{\"opId\":\"o\",\"ki\xffnd\":\"todo\",\"id\":\"n\",\"type\":\"delete\"}]}",
		`{"ops":[{"opId":"o","kind":"todo","id":"n","type":"upsert","payload":{"\u005fx":1}}]}`,
		// not JSON, not an object, trailing data
		``, ` `, `null`, `[]`, `"ops"`, `{"ops":[`, `{"ops":[]}{}`, `{"ops":[]} x`, `{"ops":[],}`, `{'ops':[]}`,
	}
}

// sameBatch reports how the outcomes of the new and the reference decoder
// differ, or "" when they agree: the same ops, or errors of the same kind
// with the same message.
func sameBatch(gotOps []core.Op, gotErr error, refOps []core.Op, refErr error) string {
	if (gotErr == nil) != (refErr == nil) {
		return fmt.Sprintf("error %v, reference error %v", gotErr, refErr)
	}
	if gotErr != nil {
		for _, s := range []error{core.ErrInvalid, core.ErrTooLarge} {
			if errors.Is(gotErr, s) != errors.Is(refErr, s) {
				return fmt.Sprintf("error %v, reference error %v", gotErr, refErr)
			}
		}
		// The reference's copy of batchOp is named batchOpRef.
		if want := strings.ReplaceAll(refErr.Error(), "batchOpRef", "batchOp"); gotErr.Error() != want {
			return fmt.Sprintf("message %q, reference %q", gotErr.Error(), want)
		}
		return ""
	}
	if len(gotOps) != len(refOps) {
		return fmt.Sprintf("%d ops, reference %d", len(gotOps), len(refOps))
	}
	for i := range gotOps {
		g, r := &gotOps[i], &refOps[i]
		if g.OpID != r.OpID || g.Kind != r.Kind || g.ID != r.ID || g.Type != r.Type || g.Force != r.Force ||
			!bytes.Equal(g.Payload, r.Payload) || !g.BaseUpdatedAt.Equal(r.BaseUpdatedAt) ||
			!g.EditedAt.Equal(r.EditedAt) || g.BaseUpdatedAt.Location() != r.BaseUpdatedAt.Location() ||
			g.EditedAt.Location() != r.EditedAt.Location() {
			return fmt.Sprintf("op %d: %+v, reference %+v", i, *g, *r)
		}
	}
	return ""
}

// corpusBodies returns every []byte value of the checked-in fuzz corpora.
func corpusBodies(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, dir := range []string{"FuzzHandlerDecode", "FuzzDecodeBatch"} {
		files, err := filepath.Glob(filepath.Join("testdata", "fuzz", dir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("no corpus in %s", dir)
		}
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for line := range strings.Lines(string(b)) {
				line = strings.TrimSpace(line)
				if !strings.HasPrefix(line, "[]byte(") {
					continue
				}
				expr, err := parser.ParseExpr(line)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				lit, ok := expr.(*ast.CallExpr).Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: %q is not a []byte literal", name, line)
				}
				s, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				out[name] = []byte(s)
				n++
			}
			if n != 1 {
				t.Fatalf("%s: %d []byte values", name, n)
			}
		}
	}
	return out
}

func TestDecodeBatchMatchesReference(t *testing.T) {
	bodies := map[string][]byte{}
	for i, c := range batchCases() {
		bodies[fmt.Sprintf("case %d %.60s", i, c)] = []byte(c)
	}
	corpus := corpusBodies(t)
	for name, b := range corpus {
		bodies[name] = b
	}
	fast := 0
	for name, body := range bodies {
		for _, maxOps := range []int{1, 3, 1000} {
			ops, err := decodeBatch(bytes.Clone(body), maxOps)
			refOps, refErr := decodeBatchRef(bytes.Clone(body), maxOps)
			if d := sameBatch(ops, err, refOps, refErr); d != "" {
				t.Errorf("%s (maxOps %d): %s\nbody: %q", name, maxOps, d, body)
			}
		}
		if json := bytes.TrimSpace(body); len(json) > 0 && json[0] == '{' && isValidJSON(body) {
			if _, _, _, err := readBatch(body, 1000); err == nil {
				fast++
			}
		}
	}
	t.Logf("%d bodies (%d from the fuzz corpora), %d decoded without the fallback", len(bodies), len(corpus), fast)
}

// The fallback is for odd bodies only: what clients send takes the walker.
func TestDecodeBatchFastPath(t *testing.T) {
	for _, c := range []string{
		`{"ops":[]}`,
		`{"ops":[{"opId":"o","kind":"todo","id":"n","type":"delete","baseUpdatedAt":"2026-01-01T00:00:00Z","force":true}]}`,
		`{"ops":[{"opId":"o","kind":"todo","id":"n","type":"upsert","payload":{"a":[1,{"b":null}]},"editedAt":null}]}`,
		`{"OPS":[{"OpId":"o","Kind":"todo","ID":"n","Type":"delete"}]}`,
		`{"ops":null}`,
	} {
		if _, _, _, err := readBatch([]byte(c), 10); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
	for _, c := range []string{`{"ops":[],"x":1}`, `{"ops":[],"ops":[]}`, `{"ops":[1]}`, `{"ops":[{"force":"true"}]}`} {
		if _, _, _, err := readBatch([]byte(c), 10); !errors.Is(err, errStdDecode) {
			t.Errorf("%s: %v, want the fallback", c, err)
		}
	}
}

func isValidJSON(b []byte) bool {
	_, err := decodeBatch(b, 0)
	return err == nil || !strings.Contains(err.Error(), "malformed JSON")
}

// A payload must not alias the request body: the op outlives the buffer.
func TestDecodeBatchCopiesPayload(t *testing.T) {
	body := []byte(`{"ops":[{"opId":"o","kind":"todo","id":"n","type":"upsert","payload":{"a":{"b":[1,{"c":"d"}]}}},` +
		`{"opId":"p","kind":"todo","id":"m","type":"upsert","payload":{"e":"f"}}]}`)
	ops, err := decodeBatch(body, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"a":{"b":[1,{"c":"d"}]}}`, `{"e":"f"}`}
	for i := range body {
		body[i] = 'X'
	}
	for i, op := range ops {
		if string(op.Payload) != want[i] {
			t.Fatalf("op %d payload %s after the body changed, want %s", i, op.Payload, want[i])
		}
	}
	if string(ops[0].Kind) != "todo" || ops[1].OpID != "p" {
		t.Fatalf("ops changed with the body: %+v", ops)
	}
}

// More than maxOps ops is 413, after the whole body was checked: a type
// error past the limit still wins, as before.
func TestDecodeBatchLimitAfterDecoding(t *testing.T) {
	del := `{"opId":"o","kind":"todo","id":"n","type":"delete"}`
	body := `{"ops":[` + strings.Repeat(del+",", 5) + `{"opId":7}]}`
	if _, err := decodeBatch([]byte(body), 2); !errors.Is(err, core.ErrInvalid) || errors.Is(err, core.ErrTooLarge) {
		t.Fatalf("type error past the limit: %v", err)
	}
	body = `{"ops":[` + strings.Repeat(del+",", 5) + del + `]}`
	if _, err := decodeBatch([]byte(body), 2); !errors.Is(err, core.ErrTooLarge) {
		t.Fatalf("6 ops with maxOps 2: %v", err)
	}
}

// The new decoder and the reflective one agree on any body.
func FuzzDecodeBatchReference(f *testing.F) {
	for _, c := range batchCases() {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, maxOps := range []int{2, 100} {
			ops, err := decodeBatch(bytes.Clone(body), maxOps)
			refOps, refErr := decodeBatchRef(bytes.Clone(body), maxOps)
			if d := sameBatch(ops, err, refOps, refErr); d != "" {
				t.Fatalf("maxOps %d: %s\nbody: %q", maxOps, d, body)
			}
		}
		checkSplitBody(t, body)
	})
}

// batchBody is a POST /batch body of n upserts with ~215-byte payloads.
func batchBody(n int) []byte {
	b := []byte(`{"ops":[`)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"opId":"op-%06d","kind":"todo","id":"id-%06d","type":"upsert",`+
			`"baseUpdatedAt":"2026-01-01T00:00:00.%06dZ","payload":{"title":"todo number %06d of the benchmark batch",`+
			`"done":%t,"n":%d,"tags":["work","home","errand"],"note":"a longer note so the payload is about two hundred bytes",`+
			`"meta":{"prio":3,"owner":"u-42"}}}`, i, i, i, i, i%2 == 0, i)
	}
	return append(b, "]}"...)
}

func BenchmarkDecodeBatch(b *testing.B) {
	body := batchBody(500)
	ops, err := decodeBatch(body, 1000)
	if err != nil || len(ops) != 500 {
		b.Fatal(err)
	}
	refOps, refErr := decodeBatchRef(body, 1000)
	if d := sameBatch(ops, err, refOps, refErr); d != "" {
		b.Fatal(d)
	}
	b.Logf("payload %d bytes, body %d bytes", len(ops[0].Payload), len(body))
	for _, bc := range []struct {
		name string
		fn   func([]byte, int) ([]core.Op, error)
	}{{"old", decodeBatchRef}, {"new", decodeBatch}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.fn(body, 1000); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// splitBody (PUT bodies, batch payloads) agrees with its reference.
func TestSplitBodyMatchesReference(t *testing.T) {
	bodies := []string{`{}`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"id":"n","updated_at":null,"deletedAt":null,"editedAt":"2026-01-01T00:00:00Z"}`,
		`{"updated_at":5}`, `{"edited_at":"x"}`, `{"_baseUpdatedAt":"2026-01-01T00:00:00Z","b":[{"c":1}]}`, `{"_rev":1}`, `{"\u005frev":1}`,
		`{"id":7}`, `{"id":"m"}`, "{\"\xff\":1,\"\xff\":2}", `[]`, `null`, `{"a":`, ` { "a" : 1 , "b" : { } } `}
	var many strings.Builder
	many.WriteString(`{`)
	for i := range 40 {
		fmt.Fprintf(&many, `"f%d":%d,`, i, i)
	}
	many.WriteString(`"f7":0}`)
	bodies = append(bodies, many.String(), strings.Replace(many.String(), `"f7":0`, `"g":0`, 1))
	for _, b := range bodies {
		checkSplitBody(t, []byte(b))
	}
}

func checkSplitBody(t *testing.T, b []byte) {
	t.Helper()
	f, err := splitBody(bytes.Clone(b), "n")
	rf, rerr := splitBodyRef(bytes.Clone(b), "n")
	if (err == nil) != (rerr == nil) || (err != nil && (err.Error() != rerr.Error() || !errors.Is(err, core.ErrInvalid))) {
		t.Fatalf("%q: error %v, reference %v", b, err, rerr)
	}
	if !bytes.Equal(f.payload, rf.payload) || !f.base.Equal(rf.base) || !f.edited.Equal(rf.edited) {
		t.Fatalf("%q: %+v, reference %+v", b, f, rf)
	}
}
