package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// hashGoldenOps are ops of every form requestHash reads: each kind of
// payload (flat, nested, escaped, spaced, long), a delete, a base, force.
func hashGoldenOps() []core.Op {
	base := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)
	long := `{"title":"` + strings.Repeat("long text ", 100) + `","count":1}`
	return []core.Op{
		{Kind: "item", ID: "a", Type: core.OpUpsert, Payload: json.RawMessage(`{"title":"t","count":3,"done":false,"n":null}`)},
		{Kind: "item", ID: "a", Type: core.OpUpsert, Payload: json.RawMessage(` { "done" : true , "count":3.50, "title":"t" } `)},
		{Kind: "item", ID: "b", Type: core.OpUpsert, Payload: json.RawMessage(`{"tags":["x","y"],"meta":{"b":1,"a":2}}`)},
		{Kind: "item", ID: "c", Type: core.OpUpsert, Payload: json.RawMessage(`{"t":"a<b & \u00e9\n"}`)},
		{Kind: "item", ID: "d", Type: core.OpUpsert, Payload: json.RawMessage(long), BaseUpdatedAt: base},
		{Kind: "note", ID: "e", Type: core.OpUpsert, Payload: json.RawMessage(`{}`), Force: true},
		{Kind: "note", ID: "e", Type: core.OpDelete},
		{Kind: "note", ID: "e", Type: core.OpDelete, BaseUpdatedAt: base, Force: true},
	}
}

// TestRequestHashGolden: an op's request hash is what every earlier
// version computed: the authority compares it with the hashes its
// idempotency records hold, written by those versions.
func TestRequestHashGolden(t *testing.T) {
	want := []string{
		"0832351e03b5b37f4e7c28cdfacacc95de1634f6c01bbfeafc2e9ebfedcbca1e",
		"5d4d1e163037548b888f23919dcb0f91c670f13a9bc30c0a2141f68aec8ff8c2",
		"4359b5937e22e7f08495cd6f3c367aaeaf15c15a2ca453a7f5e3a84018c88a4d",
		"b2b31f10c48e530ccca34dfbf7b5e7910c69a671b5905b7fc3ac1c8b8759a037",
		"32e2ef7e35c42aeb5d6f593010982183cfbe2afc9114542e76b0d2a34db2bd59",
		"5cdecc9cbb509636b0b4eea3ef2d6fa40777c838ebc98d091c9223dc503ab905",
		"a5b505d1aefd7286f27a154a086a0ab0db22bf90565d35e598a6ce4b965e1913",
		"7106e28d3a4f0b9318b148958b4d658ac2ec53c79bca91233ab3d74c2c8122c7",
	}
	ops := hashGoldenOps()
	for i, op := range ops {
		got, err := requestHash(op)
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
		if got != want[i] {
			t.Errorf("op %d: hash %s, want %s", i, got, want[i])
		}
	}
}

// TestRequestHashAllocs: hashing a flat payload's request allocates only
// the hash's text.
func TestRequestHashAllocs(t *testing.T) {
	op := hashGoldenOps()[0]
	if n := testing.AllocsPerRun(100, func() {
		if _, err := requestHash(op); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("requestHash allocates %v times, want 1", n)
	}
}

// BenchmarkRequestHash hashes the request of an op with a flat payload,
// as the authority does for every op it is pushed.
//
//	go test ./server -run '^$' -bench RequestHash -benchmem
func BenchmarkRequestHash(b *testing.B) {
	op := core.Op{Kind: "item", ID: "item-00000042", Type: core.OpUpsert,
		Payload: json.RawMessage(`{"id":"item-00000042","title":"Item number 42 of the benchmark data set","body":"` +
			strings.Repeat("lorem ipsum ", 8) + `","count":42,"done":true}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := requestHash(op); err != nil {
			b.Fatal(err)
		}
	}
}
