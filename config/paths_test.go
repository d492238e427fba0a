package config_test

import (
	"path/filepath"
	"testing"

	"github.com/offsync/offsync/config"
)

// A relative sqlite dsn names a file beside the config, as a relative
// plugin path does, whatever the working directory.
func TestStoreDSNResolvesAgainstTheConfigFile(t *testing.T) {
	dir := filepath.Join("..", "conf")
	for _, tc := range []struct{ dsn, want string }{
		{"client.db", filepath.Join(dir, "client.db")},
		{"data/client.db", filepath.Join(dir, "data", "client.db")},
		{"file:client.db?_pragma=foreign_keys(1)", "file:" + filepath.ToSlash(filepath.Join(dir, "client.db")) + "?_pragma=foreign_keys(1)"},
		{"/var/lib/app/client.db", "/var/lib/app/client.db"},
		{"file:/var/lib/app/client.db", "file:/var/lib/app/client.db"},
		{":memory:", ":memory:"},
		{"file::memory:?cache=shared", "file::memory:?cache=shared"},
		{"file:mem?mode=memory", "file:mem?mode=memory"},
	} {
		c, err := config.ParseClient([]byte("store: {dsn: \""+tc.dsn+"\"}\ntransport: {url: http://127.0.0.1:1}\nconflicts: {default: manual}\n"),
			filepath.Join(dir, "client.yaml"))
		if err != nil {
			t.Fatalf("%s: %v", tc.dsn, err)
		}
		if c.Store.DSN != tc.want {
			t.Errorf("dsn %q from %s: %q, want %q", tc.dsn, dir, c.Store.DSN, tc.want)
		}
		if p := c.PluginPath(config.Strategy{Plugin: "bin/r"}); p != filepath.Join(dir, "bin", "r") {
			t.Errorf("plugin path %q", p)
		}
	}
}

// manual in a config: every conflict of the kind waits in the inbox.
func TestManualStrategyInConfig(t *testing.T) {
	c, err := config.ParseClient([]byte("store: {dsn: c.db}\ntransport: {url: http://127.0.0.1:1}\n"+
		"conflicts: {default: manual, kinds: {note: manual, task: serverWins}}\ntables: {note: {}, task: {}}\n"), "client.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Conflicts.Default.Name != "manual" || c.Conflicts.Kinds["note"].Name != "manual" {
		t.Errorf("conflicts: %+v", c.Conflicts)
	}
}
