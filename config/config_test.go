package config_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	_ "github.com/offsync/offsync/drivers/store/sqlite"
	_ "github.com/offsync/offsync/drivers/transport/rest"
)

func init() {
	// The plugin driver lives in package plugins, which the root package
	// imports; validation only needs its name registered.
	core.RegisterResolver(config.PluginDriver, func(context.Context, map[string]any) (core.Resolver, error) {
		return nil, errors.ErrUnsupported
	})
}

func TestClientFull(t *testing.T) {
	t.Setenv("TEST_API_TOKEN", "s3cret")
	sum := strings.Repeat("ab", 32)
	c, err := config.ParseClient([]byte(`
store:
  driver: sqlite
  dsn: "file:app.db"
  options: {busy_timeout: 5000, synchronous: NORMAL}
transport:
  url: https://api.example.com
  token: "${TEST_API_TOKEN}"
  options: {timeout: 10s}
sync:
  interval: 1m
  push_on_write: true
  debounce: 50ms
  realtime: true
  page_size: 100
  batch_size: 50
  max_attempts: 3
  resync_interval: 24h
conflicts:
  default: serverWins
  kinds:
    note: clientWins
    doc: {plugin: bin/resolver, sha256: "`+sum+`", timeout: 2s}
tables:
  note: {type: document}
  doc:
`), "dir/client.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The relative file of the dsn is beside the config (dir/).
	if c.Store.Driver != "sqlite" || c.Store.DSN != "file:dir/app.db" || c.Store.Options["busy_timeout"] != 5000 || c.Store.Options["synchronous"] != "NORMAL" {
		t.Errorf("store: %+v", c.Store)
	}
	if c.Transport.Driver != "rest" || c.Transport.Token != "s3cret" || c.Transport.Options["timeout"] != "10s" {
		t.Errorf("transport: %+v", c.Transport)
	}
	want := config.Sync{Interval: time.Minute, PushOnWrite: true, Debounce: 50 * time.Millisecond, Realtime: true,
		PageSize: 100, BatchSize: 50, MaxAttempts: 3, ResyncInterval: 24 * time.Hour}
	if c.Sync != want {
		t.Errorf("sync: %+v, want %+v", c.Sync, want)
	}
	if c.Conflicts.Default.Name != "serverWins" || c.Conflicts.Kinds["note"].Name != "clientWins" {
		t.Errorf("conflicts: %+v", c.Conflicts)
	}
	doc := c.Conflicts.Kinds["doc"]
	if !doc.IsPlugin() || doc.SHA256 != sum || doc.Timeout != 2*time.Second || c.PluginPath(doc) != filepath.Join("dir", "bin", "resolver") {
		t.Errorf("plugin strategy: %+v at %s", doc, c.PluginPath(doc))
	}
	if c.Tables["note"].Type != "document" || c.Tables["doc"].Type != "document" {
		t.Errorf("tables: %+v", c.Tables)
	}
	if p, ok := c.Position("sync.page_size"); !ok || p.Line != 15 {
		t.Errorf("position of sync.page_size: %+v %v", p, ok)
	}
}

func TestClientDefaults(t *testing.T) {
	c, err := config.ParseClient([]byte("store: {dsn: a.db}\ntransport: {url: 'http://h'}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Sync{Interval: config.DefaultInterval, Debounce: config.DefaultDebounce, PageSize: 500, BatchSize: 500, MaxAttempts: 8}
	if c.Sync != want || c.Store.Driver != "sqlite" || c.Transport.Driver != "rest" || c.Conflicts.Default.Name != "autoPreserve" {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = config.ParseClient([]byte("store: {dsn: a.db}\ntransport: {url: 'http://h'}\nsync: {interval: 0s}\n"), "")
	if err != nil || c.Sync.Interval != 0 {
		t.Fatalf("interval 0s turns the timer off: %v %v", c.Sync.Interval, err)
	}
}

// TestThreeMistakes is the acceptance check: every problem, with its line.
func TestThreeMistakes(t *testing.T) {
	_, err := config.ParseClient([]byte(`store:
  dsn: app.db
  colour: blue
transport:
  url: http://localhost:8080
sync:
  interval: often
conflicts:
  kinds:
    note: theirsWins
`), "three.yaml")
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	probs := config.Problems(err)
	if len(probs) != 3 {
		t.Fatalf("%d problems, want 3:\n%v", len(probs), err)
	}
	want := []struct {
		line, col  int
		path, text string
	}{
		{3, 3, "store.colour", `unknown key "colour"`},
		{7, 13, "sync.interval", `"often"`},
		{10, 5, "conflicts.kinds.note", `unknown strategy "theirsWins"`},
	}
	for i, w := range want {
		p := probs[i]
		if p.Line != w.line || p.Column != w.col || p.Path != w.path || !strings.Contains(p.Error(), w.text) || p.File != "three.yaml" {
			t.Errorf("problem %d = %q (%d:%d %s), want %d:%d %s %q", i, p.Error(), p.Line, p.Column, p.Path, w.line, w.col, w.path, w.text)
		}
		if !strings.HasPrefix(p.Error(), fmt.Sprintf("three.yaml:%d:%d: ", w.line, w.col)) {
			t.Errorf("message %q does not start with its position", p.Error())
		}
	}
}

func TestStrictShapes(t *testing.T) {
	for name, tc := range map[string]struct {
		src, want string
		line      int
	}{
		"unknown top key":   {"store: {dsn: a}\ntransport: {url: 'http://h'}\nstorage: x\n", `unknown key "storage" in the config`, 3},
		"repeated key":      {"store: {dsn: a}\ntransport: {url: 'http://h'}\nsync: {page_size: 1}\nsync: {page_size: 2}\n", "already defined", 4},
		"mapping for value": {"store: {dsn: {a: 1}}\ntransport: {url: 'http://h'}\n", "want a string", 1},
		"bool":              {"store: {dsn: a}\ntransport: {url: 'http://h'}\nsync: {realtime: yes please}\n", "want true or false", 3},
		"negative":          {"store: {dsn: a}\ntransport: {url: 'http://h'}\nsync: {page_size: -1}\n", "negative", 3},
		"neg duration":      {"store: {dsn: a}\ntransport: {url: 'http://h'}\nsync: {debounce: -1s}\n", "negative", 3},
		"list for map":      {"store: {dsn: a}\ntransport: {url: 'http://h'}\ntables: [note]\n", "want a mapping", 3},
		"typed table":       {"store: {dsn: a}\ntransport: {url: 'http://h'}\ntables: {note: {type: typed}}\n", "only \"document\"", 3},
		"bad kind":          {"store: {dsn: a}\ntransport: {url: 'http://h'}\ntables: {health: {}}\n", "health", 3},
		"unknown driver":    {"store: {driver: oracle, dsn: a}\ntransport: {url: 'http://h'}\n", `unknown store driver "oracle"`, 1},
		"missing dsn":       {"store: {driver: sqlite}\ntransport: {url: 'http://h'}\n", "store.dsn is required", 1},
		"bad sha":           {"store: {dsn: a}\ntransport: {url: 'http://h'}\nconflicts: {default: {plugin: p, sha256: xyz}}\n", "64 hex", 3},
		"plugin w/o path":   {"store: {dsn: a}\ntransport: {url: 'http://h'}\nconflicts: {default: {sha256: xyz}}\n", "needs plugin", 3},
		"token twice":       {"store: {dsn: a}\ntransport: {url: 'http://h', token: a, options: {token: b}}\n", "set twice", 2},
		"syntax":            {"store: {dsn: a\ntransport: x\n", "syntax", 2},
		"two documents":     {"store: {dsn: a}\ntransport: {url: 'http://h'}\n---\nstore: {dsn: b}\n", "one YAML document", 4},
		"alias unknown":     {"store: {dsn: *nope}\ntransport: {url: 'http://h'}\n", "", 0},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.ParseClient([]byte(tc.src), "c.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrUnknownDriver) {
				t.Fatalf("err %v wraps no sentinel", err)
			}
			if tc.want == "" {
				return
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			probs := config.Problems(err)
			if len(probs) == 0 || probs[0].Line != tc.line {
				t.Fatalf("problems %v: want the first at line %d", err, tc.line)
			}
		})
	}
	if _, err := config.ParseClient(nil, "empty.yaml"); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("empty config: %v", err)
	}
}

func TestAnchorsAndAliases(t *testing.T) {
	c, err := config.ParseClient([]byte("store: {dsn: &db app.db}\ntransport: {url: 'http://h'}\ntables: {note: &doc {type: document}, task: *doc}\n"), "")
	if err != nil || c.Store.DSN != "app.db" || c.Tables["task"].Type != "document" {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("CFG_A", "alpha")
	t.Setenv("CFG_EMPTY", "")
	os.Unsetenv("CFG_UNSET_ONE")
	c, err := config.ParseClient([]byte(`store: {dsn: "${CFG_A}.db", options: {x: "${CFG_A}"}}
transport: {url: "http://h/$$CFG_A/${CFG_EMPTY}x", token: "p$ss${CFG_A}$"}
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.DSN != "alpha.db" || c.Store.Options["x"] != "alpha" || c.Transport.URL != "http://h/$CFG_A/x" || c.Transport.Token != "p$ssalpha$" {
		t.Fatalf("expanded: %q %v %q %q", c.Store.DSN, c.Store.Options, c.Transport.URL, c.Transport.Token)
	}
	_, err = config.ParseClient([]byte("store: {dsn: a}\ntransport:\n  url: http://h\n  token: \"${CFG_UNSET_ONE}\"\n"), "env.yaml")
	probs := config.Problems(err)
	if len(probs) != 1 || probs[0].Line != 4 || !strings.Contains(err.Error(), "CFG_UNSET_ONE is not set") || !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("unset variable: %v", err)
	}
	for _, bad := range []string{"${", "${1X}", "${A-B}", "${}"} {
		if _, err := config.ParseClient([]byte("store: {dsn: a}\ntransport: {url: 'http://h', token: '"+bad+"'}\n"), ""); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}

func TestServer(t *testing.T) {
	t.Setenv("CFG_TOKEN", "tok")
	s, err := config.ParseServer([]byte(`store: {dsn: s.db, options: {synchronous: FULL}}
server:
  http: ":9000"
  kinds: [note, task]
  dynamic_kinds: "^x_[a-z]+$"
  tokens:
    - {token: "${CFG_TOKEN}", principal: alice, attrs: {team: red}}
  scope: {field: owner, kinds: [note]}
  max_batch: 10
`), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v := s.Server
	if v.HTTP != ":9000" || len(v.Kinds) != 2 || v.DynamicKinds != "^x_[a-z]+$" || v.Tokens[0].Token != "tok" || v.Tokens[0].Attrs["team"] != "red" ||
		v.Scope.Field != "owner" || v.MaxBatch != 10 || v.MaxLimit != 1000 || v.DefaultLimit != 500 || v.MaxBody != 4<<20 ||
		v.IdempotencyRetention != 720*time.Hour || v.Heartbeat != 15*time.Second {
		t.Fatalf("server: %+v", v)
	}
	_, err = config.ParseServer([]byte(`store: {dsn: s.db}
server:
  kinds: [note, note]
  dynamic_kinds: "(["
  tokens: [{principal: bob}]
  scope: {field: _x}
  default_limit: 5000
`), "bad.yaml")
	probs := config.Problems(err)
	lines := map[int]bool{}
	for _, p := range probs {
		lines[p.Line] = true
	}
	if len(probs) != 5 || !lines[3] || !lines[4] || !lines[5] || !lines[6] || !lines[7] {
		t.Fatalf("want five problems on lines 3-7:\n%v", err)
	}
	if _, err := config.ParseServer([]byte("store: {dsn: s.db}\nserver: {http: ':1'}\n"), ""); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "serves no kind") {
		t.Fatalf("no kinds: %v", err)
	}
	if _, err := config.ParseServer([]byte("store: {dsn: s.db}\nserver: {kinds: [a], scope: {field: owner}}\n"), ""); !strings.Contains(fmt.Sprint(err), "needs server.tokens") {
		t.Fatalf("scope without tokens: %v", err)
	}
}

func TestExampleConfigs(t *testing.T) {
	t.Setenv("OFFSYNC_TOKEN", "x")
	if _, err := config.LoadClient("../examples/config/client.yaml"); err != nil {
		t.Fatal(err)
	}
	if _, err := config.LoadServer("../examples/config/server.yaml"); err != nil {
		t.Fatal(err)
	}
	if _, err := config.LoadClient("no/such/file.yaml"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestWrap(t *testing.T) {
	c, err := config.ParseClient([]byte("store:\n  dsn: a.db\ntransport: {url: 'http://h'}\n"), "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	werr := c.Wrap("store.options.foo", fmt.Errorf("bad: %w", core.ErrInvalid))
	if !errors.Is(werr, core.ErrInvalid) || !strings.HasPrefix(werr.Error(), "w.yaml:1:1: store.options.foo: bad") {
		t.Fatalf("wrap: %v", werr)
	}
	if c.Wrap("x", nil) != nil {
		t.Fatal("Wrap(nil) is not nil")
	}
}

func ExampleParseClient() {
	_, err := config.ParseClient([]byte(`store: {dsn: app.db}
transport:
  url: http://localhost:8080
  retries: 3
sync:
  interval: 5 minutes
`), "offsync.yaml")
	fmt.Println(err)
	// Output:
	// offsync.yaml:4:3: transport.retries: unknown key "retries" in transport (known: ca_file, driver, options, token, url)
	// offsync.yaml:6:13: sync.interval: want a duration such as 30s, 5m or 1h30m, got "5 minutes"
}
