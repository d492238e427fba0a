package offsync

import (
	"testing"

	"github.com/offsync/offsync/config"
)

// An authority on SQLite acknowledges only durable writes unless its config
// says otherwise; other stores' options pass through untouched.
func TestAuthorityStoreOptions(t *testing.T) {
	if got := authorityStoreOptions(config.Store{Driver: "sqlite"}); got["synchronous"] != "FULL" {
		t.Fatalf("sqlite default: %v", got)
	}
	given := map[string]any{"synchronous": "NORMAL", "busy_timeout": 5}
	if got := authorityStoreOptions(config.Store{Driver: "sqlite", Options: given}); got["synchronous"] != "NORMAL" {
		t.Fatalf("an explicit choice was overridden: %v", got)
	}
	other := map[string]any{"busy_timeout": 5}
	got := authorityStoreOptions(config.Store{Driver: "sqlite", Options: other})
	if got["synchronous"] != "FULL" || got["busy_timeout"] != 5 || len(other) != 1 {
		t.Fatalf("merged %v, caller's map %v (must not change)", got, other)
	}
	if got := authorityStoreOptions(config.Store{Driver: "postgres"}); got != nil {
		t.Fatalf("postgres: %v", got)
	}
}
