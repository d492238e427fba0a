package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// DefaultFile is the config file the command line reads without --config.
const DefaultFile = "offsync.yaml"

// LoadClient reads and checks the client config at path. See ParseClient.
func LoadClient(path string) (*Client, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseClient(data, path)
}

// LoadServer reads and checks the server config at path. See ParseServer.
func LoadServer(path string) (*Server, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return ParseServer(data, path)
}

// ParseClient decodes a client config, expands ${ENV} references from the
// process environment, fills in the defaults and checks every value. name is
// the file's name for messages and the base of relative plugin paths. The
// error names every problem found, each an *Error with its line and column
// (see Problems); the drivers named must be registered (import the offsync
// package, which registers the first-party set).
func ParseClient(data []byte, name string) (*Client, error) {
	d := newDecoder(name)
	c := &Client{}
	if d.parse(data, c) {
		c.source = d.source(name)
		c.defaults(d)
		c.validate(d)
	}
	if err := join(d.errs); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseServer is ParseClient for a server config.
func ParseServer(data []byte, name string) (*Server, error) {
	d := newDecoder(name)
	s := &Server{}
	if d.parse(data, s) {
		s.source = d.source(name)
		s.defaults()
		s.validate(d)
	}
	if err := join(d.errs); err != nil {
		return nil, err
	}
	return s, nil
}

func newDecoder(name string) *decoder {
	return &decoder{file: name, lookup: os.LookupEnv, pos: map[string]Pos{}, anchors: map[string]ast.Node{}}
}

func (d *decoder) source(name string) source {
	dir := "."
	if name != "" {
		dir = filepath.Dir(name)
	}
	return source{file: name, dir: dir, pos: d.pos}
}

func (c *Client) defaults(d *decoder) {
	if c.Store.Driver == "" {
		c.Store.Driver = DefaultStoreDriver
	}
	if c.Transport.Driver == "" {
		c.Transport.Driver = DefaultTransportDriver
	}
	if _, set := d.pos["sync.interval"]; !set {
		c.Sync.Interval = DefaultInterval
	}
	if c.Sync.Debounce == 0 {
		c.Sync.Debounce = DefaultDebounce
	}
	if c.Sync.PageSize == 0 {
		c.Sync.PageSize = DefaultPageSize
	}
	if c.Sync.BatchSize == 0 {
		c.Sync.BatchSize = DefaultBatchSize
	}
	if c.Sync.MaxAttempts == 0 {
		c.Sync.MaxAttempts = DefaultMaxAttempts
	}
	c.Store.DSN = resolveDSN(c.Store.Driver, c.Store.DSN, c.Dir())
	if f := c.Transport.CAFile; f != "" && !filepath.IsAbs(f) {
		c.Transport.CAFile = filepath.Join(c.Dir(), f)
	}
	if f, ok := c.Transport.Options["ca_file"].(string); ok && f != "" && !filepath.IsAbs(f) {
		c.Transport.Options["ca_file"] = filepath.Join(c.Dir(), f)
	}
	if c.Conflicts.Default == (Strategy{}) {
		c.Conflicts.Default = Strategy{Name: DefaultStrategy}
	}
	for k, t := range c.Tables {
		if t.Type == "" {
			t.Type = DefaultTableType
			c.Tables[k] = t
		}
	}
}

func (s *Server) defaults() {
	if s.Store.Driver == "" {
		s.Store.Driver = DefaultStoreDriver
	}
	v := &s.Server
	if v.HTTP == "" {
		v.HTTP = DefaultHTTP
	}
	if v.MaxBatch == 0 {
		v.MaxBatch = DefaultMaxBatch
	}
	if v.MaxLimit == 0 {
		v.MaxLimit = DefaultMaxLimit
	}
	if v.DefaultLimit == 0 {
		v.DefaultLimit = DefaultPageLimit
	}
	if v.IdempotencyRetention == 0 {
		v.IdempotencyRetention = DefaultIdempotencyRetention
	}
	if v.TombstoneRetention == nil {
		r := DefaultTombstoneRetention
		v.TombstoneRetention = &r
	}
	if v.MaxBody == 0 {
		v.MaxBody = DefaultMaxBody
	}
	if v.Heartbeat == 0 {
		v.Heartbeat = DefaultHeartbeat
	}
	if v.ReadHeaderTimeout == 0 {
		v.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if v.ReadTimeout == 0 {
		v.ReadTimeout = DefaultReadTimeout
	}
	if v.WriteTimeout == 0 {
		v.WriteTimeout = DefaultWriteTimeout
	}
	if v.IdleTimeout == 0 {
		v.IdleTimeout = DefaultIdleTimeout
	}
	if v.MaxConns == 0 {
		v.MaxConns = DefaultMaxConns
	}
	if v.ShutdownTimeout == 0 {
		v.ShutdownTimeout = DefaultShutdownTimeout
	}
}

// Check fills in the defaults of a server config built in code (as the flag
// form of `offsync serve` builds one) and validates it as ParseServer does;
// its relative paths are resolved against the working directory. The error
// joins every problem, each an *Error naming its key path.
func (s *Server) Check() error {
	d := newDecoder("")
	s.source = d.source("")
	s.defaults()
	s.validate(d)
	return join(d.errs)
}

// Path resolves a path written in the config (tokens_file, tls) against
// the config file's directory.
func (s *Server) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.Dir(), p)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{core.ErrInvalid}, args...)...)
}

func (d *decoder) checkStore(s Store) {
	if s.DSN == "" {
		d.problemAt("store.dsn", invalid("store.dsn is required (a file path or file: URI for sqlite, a URL for postgres)"))
	}
	if !slices.Contains(core.StoreDrivers(), s.Driver) {
		d.problemAt("store.driver", fmt.Errorf("%w: unknown store driver %q (registered: %s)", core.ErrUnknownDriver, s.Driver, list(core.StoreDrivers())))
	}
}

func list(names []string) string {
	if len(names) == 0 {
		return "none; import github.com/offsync/offsync"
	}
	return strings.Join(names, ", ")
}

func (d *decoder) nonNegative(path string, n int64) {
	if n < 0 {
		d.problemAt(path, invalid("must not be negative, got %d", n))
	}
}

func (d *decoder) checkKind(path, kind string) {
	if err := core.CheckKind(kind); err != nil {
		d.problemAt(path, fmt.Errorf("kind %q: %w", kind, err))
	}
}

func (c *Client) validate(d *decoder) {
	d.checkStore(c.Store)
	t := c.Transport
	if t.URL == "" {
		d.problemAt("transport.url", invalid("transport.url is required: the authority's address"))
	}
	if !slices.Contains(core.TransportDrivers(), t.Driver) {
		d.problemAt("transport.driver", fmt.Errorf("%w: unknown transport driver %q (registered: %s)", core.ErrUnknownDriver, t.Driver, list(core.TransportDrivers())))
	}
	if _, ok := t.Options["token"]; ok && t.Token != "" {
		d.problemAt("transport.options.token", invalid("the token is set twice: keep transport.token"))
	}
	if _, ok := t.Options["ca_file"]; ok && t.CAFile != "" {
		d.problemAt("transport.options.ca_file", invalid("the CA file is set twice: keep transport.ca_file"))
	}
	s := c.Sync
	d.nonNegative("sync.page_size", int64(s.PageSize))
	d.nonNegative("sync.batch_size", int64(s.BatchSize))
	d.nonNegative("sync.max_attempts", int64(s.MaxAttempts))
	d.checkStrategy("conflicts.default", c.Conflicts.Default)
	for _, kind := range sortedKeys(c.Conflicts.Kinds) {
		d.checkKind("conflicts.kinds."+kind, kind)
		d.checkStrategy("conflicts.kinds."+kind, c.Conflicts.Kinds[kind])
	}
	for _, kind := range sortedKeys(c.Tables) {
		d.checkKind("tables."+kind, kind)
		if typ := c.Tables[kind].Type; typ != DefaultTableType {
			d.problemAt("tables."+kind+".type", invalid("table type %q: only %q tables come from a config (typed tables come from Go code)", typ, DefaultTableType))
		}
	}
}

var hexDigits = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

func (d *decoder) checkStrategy(path string, s Strategy) {
	if s.IsPlugin() {
		if s.SHA256 != "" {
			if _, err := hex.DecodeString(s.SHA256); err != nil || !hexDigits.MatchString(s.SHA256) {
				d.problemAt(path+".sha256", invalid("sha256 must be 64 hex digits, got %q", s.SHA256))
			}
		}
		if !slices.Contains(core.ResolverDrivers(), PluginDriver) {
			d.problemAt(path+".plugin", fmt.Errorf("%w: the resolver driver %q is not registered (import github.com/offsync/offsync)", core.ErrUnknownDriver, PluginDriver))
		}
		return
	}
	if _, err := core.BuiltinStrategy(s.Name); err != nil {
		d.problemAt(path, invalid("unknown strategy %q (want autoPreserve, serverWins, clientWins, lastWriteWins, manual, or {plugin: path})", s.Name))
	}
}

// PluginDriver is the resolver driver that runs plugin strategies.
const PluginDriver = "plugin"

// resolveDSN resolves the relative file of a sqlite DSN (a path, or a
// "file:" URI without a host) against dir, the config file's directory, as
// plugin paths are: a config means the same files from any working
// directory. Other drivers' DSNs, absolute paths and in-memory databases
// are left as written.
func resolveDSN(driver, dsn, dir string) string {
	if driver != "sqlite" || dir == "." || dir == "" {
		return dsn
	}
	file, ok := sqliteFile(dsn)
	if !ok || filepath.IsAbs(file) {
		return dsn
	}
	abs := filepath.Join(dir, file)
	if strings.HasPrefix(dsn, "file:") {
		return "file:" + filepath.ToSlash(abs) + dsn[len("file:")+len(file):]
	}
	return abs
}

// sqliteFile returns the file a sqlite DSN names, ok false for an
// in-memory database or a URI it does not read.
func sqliteFile(dsn string) (file string, ok bool) {
	if dsn == "" || dsn == ":memory:" || strings.Contains(dsn, "mode=memory") {
		return "", false
	}
	if rest, isURI := strings.CutPrefix(dsn, "file:"); isURI {
		if strings.HasPrefix(rest, "//") || strings.HasPrefix(rest, ":memory:") {
			return "", false
		}
		file, _, _ = strings.Cut(rest, "?")
		return file, file != ""
	}
	return dsn, true
}

// LocalFile returns the database file of a sqlite store, resolved as the
// store opens it; ok is false for another driver or an in-memory database.
// Commands that only read use it to say "no database" instead of creating
// an empty one.
func (s Store) LocalFile() (file string, ok bool) {
	if s.Driver != "sqlite" {
		return "", false
	}
	return sqliteFile(s.DSN)
}

// PluginPath returns the strategy's plugin path, resolved against the config
// file's directory when relative.
func (c *Client) PluginPath(s Strategy) string {
	if s.Plugin == "" || filepath.IsAbs(s.Plugin) {
		return s.Plugin
	}
	return filepath.Join(c.Dir(), s.Plugin)
}

func (s *Server) validate(d *decoder) {
	d.checkStore(s.Store)
	v := s.Server
	d.nonNegative("server.max_batch", int64(v.MaxBatch))
	d.nonNegative("server.max_limit", int64(v.MaxLimit))
	d.nonNegative("server.default_limit", int64(v.DefaultLimit))
	d.nonNegative("server.max_body", v.MaxBody)
	if v.TombstoneRetention != nil {
		d.nonNegative("server.tombstone_retention", int64(*v.TombstoneRetention))
	}
	if v.DefaultLimit > v.MaxLimit && v.MaxLimit > 0 {
		d.problemAt("server.default_limit", invalid("default_limit %d is above max_limit %d", v.DefaultLimit, v.MaxLimit))
	}
	if len(v.Kinds) == 0 && v.DynamicKinds == "" {
		d.problemAt("server", invalid("the server serves no kind: set server.kinds, server.dynamic_kinds or both"))
	}
	seen := map[string]bool{}
	for i, k := range v.Kinds {
		p := fmt.Sprintf("server.kinds[%d]", i)
		d.checkKind(p, k)
		if seen[k] {
			d.problemAt(p, invalid("kind %q is listed twice", k))
		}
		seen[k] = true
	}
	if v.DynamicKinds != "" {
		if _, err := regexp.Compile(v.DynamicKinds); err != nil {
			d.problemAt("server.dynamic_kinds", invalid("bad regular expression: %v", err))
		}
	}
	tokens := map[string]bool{}
	for i, t := range v.Tokens {
		p := fmt.Sprintf("server.tokens[%d]", i)
		if t.Token == "" {
			d.problemAt(p+".token", invalid("token is required (write it as \"${ENV_VAR}\")"))
		} else if tokens[t.Token] {
			d.problemAt(p+".token", invalid("the same token is listed twice"))
		}
		tokens[t.Token] = true
		if t.Principal == "" {
			d.problemAt(p+".principal", invalid("principal is required"))
		}
	}
	for _, name := range sortedKeys(v.Transports) {
		p := "server.transports." + name
		drv, err := server.LookupTransport(name)
		if err != nil {
			d.problemAt(p, err)
			continue
		}
		t := v.Transports[name]
		switch {
		case drv.OwnsListener() && t.Path != "":
			d.problemAt(p+".path", invalid("%s has a listener of its own: set addr, not path", name))
		case !drv.OwnsListener() && t.Addr != "":
			d.problemAt(p+".addr", invalid("%s is served on the HTTP listener (server.http): set path, not addr", name))
		case t.Path != "" && (!strings.HasPrefix(t.Path, "/") || (t.Path != "/" && strings.HasSuffix(t.Path, "/"))):
			d.problemAt(p+".path", invalid("path %q must start with / and not end with one", t.Path))
		case t.Addr != "":
			if _, _, err := net.SplitHostPort(t.Addr); err != nil {
				d.problemAt(p+".addr", invalid("bad address %q: %v", t.Addr, err))
			}
		}
	}
	if v.Transports != nil && len(v.Transports) == 0 {
		d.problemAt("server.transports", invalid("no transport is served: name at least one (known: %s), or leave transports out for all", list(server.Transports())))
	}
	if _, _, err := net.SplitHostPort(v.HTTP); err != nil {
		d.problemAt("server.http", invalid("bad address %q: %v", v.HTTP, err))
	}
	d.nonNegative("server.max_conns", int64(v.MaxConns))
	d.nonNegative("server.max_depth", int64(v.MaxDepth))
	d.nonNegative("server.max_record_bytes", int64(v.MaxRecordBytes))
	d.nonNegative("server.max_page_bytes", int64(v.MaxPageBytes))
	d.nonNegative("server.max_dynamic_kinds", int64(v.MaxDynamicKinds))
	d.nonNegative("server.max_in_flight", int64(v.MaxInFlight))
	if t := v.TLS; t != nil && (t.Cert == "" || t.Key == "") {
		d.problemAt("server.tls", invalid("tls needs both cert and key (PEM files)"))
	}
	for _, kind := range sortedKeys(v.Scopes) {
		p := "server.scopes." + kind
		d.checkKind(p, kind)
		if f := v.Scopes[kind]; f == "" {
			d.problemAt(p, invalid("scope for kind %q names no field", kind))
		} else if err := core.CheckFieldName(f); err != nil {
			d.problemAt(p, fmt.Errorf("field %q: %w", f, err))
		}
		if v.Scope != nil && (len(v.Scope.Kinds) == 0 || slices.Contains(v.Scope.Kinds, kind)) {
			d.problemAt(p, invalid("kind %q is scoped twice (server.scope covers it)", kind))
		}
		if len(v.Kinds) > 0 && !slices.Contains(v.Kinds, kind) && v.DynamicKinds == "" {
			d.problemAt(p, invalid("scope for kind %q, which is not served (add it to server.kinds)", kind))
		}
	}
	s.validateAuth(d)
	if len(v.Scopes) > 0 && len(v.Tokens) == 0 && v.TokensFile == "" && v.JWT == nil {
		d.problemAt("server.scopes", invalid("a scope needs authentication: set server.tokens, server.tokens_file or server.jwt"))
	}
	if v.Scope != nil {
		if v.Scope.Field == "" {
			d.problemAt("server.scope.field", invalid("scope.field is required: the business field holding the owner's principal ID"))
		} else if err := core.CheckFieldName(v.Scope.Field); err != nil {
			d.problemAt("server.scope.field", fmt.Errorf("field %q: %w", v.Scope.Field, err))
		}
		if len(v.Tokens) == 0 && v.TokensFile == "" && v.JWT == nil {
			d.problemAt("server.scope", invalid("a scope needs server.tokens, server.tokens_file or server.jwt: without them every caller is anonymous"))
		}
		for i, k := range v.Scope.Kinds {
			d.checkKind(fmt.Sprintf("server.scope.kinds[%d]", i), k)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
