package jsonscan

import (
	"encoding/json"
	"testing"
)

var validCases = []string{
	``, ` `, `{}`, ` {"a":1} `, `{"a":1}{}`, `{"a":1,"a":2}`, "{\"a\":\"\xff\"}", `{"a":"\ud800"}`,
	`[1,2]`, `"s"`, `1`, `-0.5e3`, `01`, `1.`, `{"a":}`, `{"a" 1}`, `{a:1}`, `{"a":1,}`, `[1,]`,
	`nul`, `null`, `true`, `{"a":[{"b":{"c":null}}]}`, "{\"a\":\"\t\"}", `{"a":"\x"}`, "\ufeff{}",
	`{"a":1e999}`, `{"a":"\u00e9"}`, "{\"a\":1}\n", `{"a":1}]`,
}

// Valid and IsObject agree with encoding/json on every case.
func TestValidMatchesEncodingJSON(t *testing.T) {
	for _, c := range validCases {
		b := []byte(c)
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Errorf("Valid(%q) = %v, encoding/json says %v", c, got, want)
		}
		if got, want := IsObject(b), isObjectStd(b); got != want {
			t.Errorf("IsObject(%q) = %v, want %v", c, got, want)
		}
	}
}

func isObjectStd(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Valid(b) && json.Unmarshal(b, &m) == nil && m != nil
}

func FuzzValid(f *testing.F) {
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
		if got, want := IsObject(b), isObjectStd(b); got != want {
			t.Fatalf("IsObject(%q) = %v, want %v", b, got, want)
		}
	})
}

var benchData = []byte(`{"title":"item 12345 with a title","body":"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.","count":12345,"done":false}`)

func BenchmarkValid(b *testing.B) {
	b.Run("jsonscan", func(b *testing.B) {
		for b.Loop() {
			Valid(benchData)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			json.Valid(benchData)
		}
	})
}
