package config_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
)

// transport.ca_file is relative to the config file, and may not be set
// twice (as a key and as a driver option).
func TestTransportCAFile(t *testing.T) {
	dir := filepath.Join("..", "conf")
	for _, tc := range []struct{ file, want string }{
		{"ca.pem", filepath.Join(dir, "ca.pem")},
		{"tls/ca.pem", filepath.Join(dir, "tls", "ca.pem")},
		{"/etc/offsync/ca.pem", "/etc/offsync/ca.pem"},
	} {
		c, err := config.ParseClient([]byte("store: {dsn: c.db}\ntransport: {url: https://127.0.0.1:1, ca_file: "+tc.file+"}\n"),
			filepath.Join(dir, "client.yaml"))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if c.Transport.CAFile != tc.want {
			t.Errorf("ca_file %q: %q, want %q", tc.file, c.Transport.CAFile, tc.want)
		}
	}
	c, err := config.ParseClient([]byte("store: {dsn: c.db}\ntransport: {url: https://127.0.0.1:1, options: {ca_file: ca.pem}}\n"),
		filepath.Join(dir, "client.yaml"))
	if err != nil || c.Transport.Options["ca_file"] != filepath.Join(dir, "ca.pem") {
		t.Errorf("options.ca_file: %v, %v", c.Transport.Options["ca_file"], err)
	}
	_, err = config.ParseClient([]byte("store: {dsn: c.db}\ntransport:\n  url: https://127.0.0.1:1\n  ca_file: a.pem\n  options: {ca_file: b.pem}\n"), "client.yaml")
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "client.yaml:5:") || !strings.Contains(err.Error(), "transport.options.ca_file") {
		t.Errorf("ca_file set twice: %v", err)
	}
}
