package server

import (
	"bytes"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestCanonicalFlatMatchesEncodingJSON: whenever the direct rewrite takes a
// payload, it gives the bytes encoding/json gives (request hashes stored by
// earlier versions must still match).
func TestCanonicalFlatMatchesEncodingJSON(t *testing.T) {
	keys := []string{"a", "ab", "a!", "a b", "b", "B", "é", "title", "count", "x<y", `q\"`, "\u2028", "a"}
	values := []string{`"plain"`, `""`, `"with space"`, `"é"`, `"\u00e9"`, `"a<b"`, `"a&b"`, "\"\xff\"", "\"line\u2028sep\"",
		`0`, `-0`, `12`, `1.50`, `1e10`, `1E+2`, `-3.25e-7`, `01`, `1.`, `-`, `true`, `false`, `null`,
		`{}`, `[1,2]`, `{"n":1}`, `nul`}
	rapid.Check(t, func(rt *rapid.T) {
		var b strings.Builder
		ws := func() { b.WriteString(rapid.SampledFrom([]string{"", " ", "\n\t"}).Draw(rt, "ws")) }
		ws()
		b.WriteString("{")
		n := rapid.IntRange(0, 3).Draw(rt, "n")
		for i := range n {
			if i > 0 {
				ws()
				b.WriteString(",")
			}
			ws()
			b.WriteString(`"` + rapid.SampledFrom(keys).Draw(rt, "key") + `"`)
			ws()
			b.WriteString(":")
			ws()
			b.WriteString(rapid.SampledFrom(values).Draw(rt, "value"))
			ws()
		}
		b.WriteString("}")
		ws()
		raw := []byte(b.String())
		got, ok := canonicalFlat(raw)
		if !ok {
			return
		}
		want, err := canonicalSlow(raw)
		if err != nil {
			rt.Fatalf("%s: canonicalFlat took a payload encoding/json refuses (%v)", raw, err)
		}
		if !bytes.Equal(got, want) {
			rt.Fatalf("%s:\n flat %s\n slow %s", raw, got, want)
		}
	})
}

// TestCanonicalFlatTakesUsualPayloads guards against a fast path that gives
// up on everything, and checks it leaves the unusual to encoding/json.
func TestCanonicalFlatTakesUsualPayloads(t *testing.T) {
	for _, p := range []string{`{}`, `{"title":"Buy milk","count":3,"done":false,"note":null}`, ` { "b" : 1 , "a" : "x y" } `} {
		got, ok := canonicalFlat([]byte(p))
		want, err := canonicalSlow([]byte(p))
		if !ok || err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: flat %s (%v), slow %s (%v)", p, got, ok, want, err)
		}
	}
	for _, p := range []string{`{"a":{"b":1}}`, `{"a":[1]}`, `{"a":"x\"y"}`, `{"a":1,"a":2}`, `{"a":"<"}`, `{"a":"a&b"}`, `{"a":">"}`, "{\"a\":\"\u2028\"}", "{\"a\":\"\xff\"}", `{"a<":1}`, `[1]`, `{"a":1} x`, `{"a":01}`} {
		if _, ok := canonicalFlat([]byte(p)); ok {
			t.Errorf("%s: canonicalFlat should leave it to encoding/json", p)
		}
	}
}
