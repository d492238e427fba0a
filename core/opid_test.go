package core_test

import (
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// TestNewOpIDBeginsWithTheTime: an op id is 32 hex digits whose first 12
// are the Unix time in milliseconds when it was made, so that ids made
// later sort later; ids of one millisecond still differ.
func TestNewOpIDBeginsWithTheTime(t *testing.T) {
	before := time.Now().UnixMilli()
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = core.NewOpID()
	}
	after := time.Now().UnixMilli()
	seen := map[string]bool{}
	for i, id := range ids {
		if len(id) != 32 {
			t.Fatalf("id %q: %d characters, want 32", id, len(id))
		}
		if _, err := hex.DecodeString(id); err != nil {
			t.Fatalf("id %q is not hex: %v", id, err)
		}
		ms, err := strconv.ParseInt(id[:12], 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		if ms < before || ms > after {
			t.Fatalf("id %q begins with %d ms, want between %d and %d", id, ms, before, after)
		}
		if i > 0 && id[:12] < ids[i-1][:12] {
			t.Fatalf("id %q made after %q sorts before it", id, ids[i-1])
		}
		if seen[id] {
			t.Fatalf("id %q made twice", id)
		}
		seen[id] = true
	}
}
