package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/config"
	_ "github.com/offsync/offsync/drivers/store/sqlite"
)

// server.tombstone_retention: 90 days when absent, 0 keeps tombstones
// forever, a negative duration is refused.
func TestTombstoneRetention(t *testing.T) {
	load := func(extra string) (*config.Server, error) {
		p := filepath.Join(t.TempDir(), "server.yaml")
		body := "store:\n  driver: sqlite\n  dsn: a.db\nserver:\n  kinds: [note]\n" + extra
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return config.LoadServer(p)
	}
	for _, tc := range []struct {
		extra string
		want  time.Duration
	}{
		{"", 90 * 24 * time.Hour},
		{"  tombstone_retention: 0s\n", 0},
		{"  tombstone_retention: 48h\n", 48 * time.Hour},
	} {
		cfg, err := load(tc.extra)
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if got := cfg.Server.TombstoneRetention; got == nil || *got != tc.want {
			t.Fatalf("%q: retention %v, want %v", tc.extra, got, tc.want)
		}
	}
	if _, err := load("  tombstone_retention: -1h\n"); err == nil || !strings.Contains(err.Error(), "tombstone_retention") {
		t.Fatalf("a negative retention: %v, want an error naming server.tombstone_retention", err)
	}
}
