package offsync_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/conformance/contract"
	"github.com/offsync/offsync/core"
)

// tlsScheme is the scheme of each first-party wire form's endpoint when
// the server serves TLS.
var tlsScheme = map[string]string{"rest": "https://", "websocket": "wss://", "graphql": "https://", "grpc": "grpcs://"}

// TestConformanceOverTLS: one offsync.ServeWith server with server.tls
// serves every wire form over TLS, gRPC's own listener included, with the
// one certificate. Each registered client transport, opened by name with
// the option ca_file (the test certificate is self-signed: it is its own
// CA), passes the checks `offsync conformance` runs (contract.RunClient) at
// its https, wss or grpcs endpoint, and reaches it with the option tls (a
// *tls.Config) too. The negative control: the same client without the CA is
// refused, so the checks pass over TLS and not beside it.
func TestConformanceOverTLS(t *testing.T) {
	dir := t.TempDir()
	pool := writeCert(t, dir)
	caFile := filepath.Join(dir, "cert.pem")
	endpoints := serveWith(t, dir, `store: {dsn: `+filepath.Join(dir, "server.db")+`}
server:
  http: 127.0.0.1:0
  kinds: [conformance, note]
  tokens: [{token: tok-1, principal: alice}, {token: tok-2, principal: bob}]
  scopes: {conformance: owner}
  tls: {cert: cert.pem, key: key.pem}
`)
	// The first-party wire forms; a test of this package registers a toy
	// transport of its own, which reads no TLS option.
	names := slices.Sorted(maps.Keys(tlsScheme))
	for _, name := range names {
		if _, ok := endpoints[name]; !ok {
			t.Fatalf("%s is not served (endpoints %v)", name, endpoints)
		}
	}
	for _, name := range names {
		url := endpoints[name]
		t.Run(name, func(t *testing.T) {
			if want := tlsScheme[name]; !strings.HasPrefix(url, want) {
				t.Fatalf("endpoint %s, want %s...", url, want)
			}
			ctx := t.Context()
			open := func(opts map[string]any) func(context.Context, string) (core.Transport, error) {
				return func(ctx context.Context, token string) (core.Transport, error) {
					o := map[string]any{"token": token}
					for k, v := range opts {
						o[k] = v
					}
					return core.OpenTransport(ctx, name, url, o)
				}
			}
			res, err := contract.RunClient(ctx, contract.ClientConfig{
				Open: open(map[string]any{"ca_file": caFile}), Token: "tok-1", Token2: "tok-2",
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			var passed []string
			for _, r := range res {
				switch r.Status {
				case contract.Fail:
					t.Errorf("%s over TLS: %s", name, r)
				case contract.Pass:
					passed = append(passed, r.Name)
				}
			}
			if !slices.Contains(passed, "create") || !slices.Contains(passed, "scope-invisibility") {
				t.Errorf("%s over TLS: the checks passed were %v", name, passed)
			}
			t.Logf("%s at %s: %d checks passed, %d run", name, url, len(passed), len(res))

			// The option tls: a *tls.Config of the caller's own.
			tr, err := open(map[string]any{"tls": &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})(ctx, "tok-1")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Pull(ctx, core.PullRequest{Kind: "note"}); err != nil {
				t.Errorf("pull with the option tls: %v", err)
			}
			closeIf(tr)

			// Negative control: without the CA, the system's roots do not
			// trust the test certificate.
			tr, err = open(nil)(ctx, "tok-1")
			if err != nil {
				t.Fatal(err)
			}
			defer closeIf(tr)
			_, err = tr.Pull(ctx, core.PullRequest{Kind: "note"})
			if err == nil {
				t.Fatalf("%s: a client without the CA pulled over TLS", name)
			}
			if !errors.Is(err, core.ErrUnavailable) {
				t.Errorf("%s without the CA: %v, want core.ErrUnavailable", name, err)
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("%s without the CA: %v does not say the certificate was refused", name, err)
			}
		})
	}
}

func closeIf(tr core.Transport) {
	if c, ok := tr.(io.Closer); ok {
		_ = c.Close()
	}
}

// A replica's config trusts the server's certificate with transport.ca_file
// (relative to the config file) and syncs over grpcs and wss; without it
// the same sync is refused.
func TestClientConfigCAFile(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	endpoints := serveWith(t, dir, `store: {dsn: `+filepath.Join(dir, "server.db")+`}
server:
  http: 127.0.0.1:0
  kinds: [note]
  tls: {cert: cert.pem, key: key.pem}
  transports: {websocket: {}, grpc: {}}
`)
	ctx := t.Context()
	open := func(name, driver, caLine string) *core.Engine {
		cfg, err := config.ParseClient([]byte(fmt.Sprintf("store: {dsn: %s}\ntransport: {driver: %s, url: %q%s}\ntables: {note: {}}\n",
			name, driver, endpoints[driver], caLine)), filepath.Join(dir, "client.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		eng, err := offsync.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
		return eng
	}
	a := open("a.db", "grpc", ", ca_file: cert.pem")
	notes, _ := a.Table("note")
	if err := core.DocsFor(a, notes.(*core.DocumentTable)).Put(ctx, "n1", map[string]any{"title": "over grpcs"}); err != nil {
		t.Fatal(err)
	}
	if st, err := a.Sync(ctx); err != nil || st.Pushed != 1 {
		t.Fatalf("sync over grpcs with transport.ca_file: %+v %v", st, err)
	}
	b := open("b.db", "websocket", ", ca_file: cert.pem")
	if st, err := b.Sync(ctx); err != nil || st.Pulled != 1 {
		t.Fatalf("sync over wss with transport.ca_file: %+v %v", st, err)
	}
	c := open("c.db", "websocket", "")
	if _, err := c.Sync(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("sync over wss without transport.ca_file: %v, want a refused certificate", err)
	}
}
