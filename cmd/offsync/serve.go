package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/offsync/offsync"
	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// dynamicKindPattern is the kinds served when no --kind is named.
const dynamicKindPattern = `^[a-z][a-z0-9_]*$`

// serveConfig is what the flags of `offsync serve` say. It only translates
// into a config.Server (see serverConfig): serving itself is offsync.Serve's,
// the same path a server config file takes.
type serveConfig struct {
	// HTTPAddr is the shared HTTP listener (REST, WebSocket, GraphQL); port
	// 0 picks a free port (logged as "listening on ADDR").
	HTTPAddr string
	// Store is the store driver; DSN what it opens (DBPath is the sqlite
	// default and the --db flag).
	Store  string
	DSN    string
	DBPath string
	// Kinds are the document kinds served; none means any kind matching
	// dynamicKindPattern.
	Kinds []string
	// TokensFile maps bearer tokens to principals (config.ParseTokens); ""
	// means no authentication: every caller is anonymous.
	TokensFile string
	// Scopes maps a kind to the field that holds its owner's principal ID.
	Scopes map[string]string
	// Off are the transports switched off (--no-NAME); Addrs the listen
	// addresses of transports with their own listener (--grpc ADDR).
	Off   map[string]*bool
	Addrs map[string]*string
	// TLS certificate and key files; AllowInsecure serves a non-loopback
	// address without TLS.
	TLSCert, TLSKey string
	AllowInsecure   bool
	// LogFormat is "text" (default) or "json"; LogLevel is debug, info
	// (default), warn or error. Logs go to LogOutput (default stderr).
	LogFormat string
	LogLevel  string
	LogOutput io.Writer
	// ShutdownTimeout bounds the wait for requests in flight on shutdown.
	ShutdownTimeout time.Duration
	// MaxBody bounds a request body or message in bytes.
	MaxBody int64
}

// defaultServeConfig returns the defaults of `offsync serve`.
func defaultServeConfig() serveConfig {
	return serveConfig{
		HTTPAddr:        config.DefaultHTTP,
		Store:           config.DefaultStoreDriver,
		DBPath:          "./offsync.db",
		LogFormat:       "text",
		LogLevel:        "info",
		ShutdownTimeout: config.DefaultShutdownTimeout,
		MaxBody:         config.DefaultMaxBody,
		Off:             map[string]*bool{},
		Addrs:           map[string]*string{},
	}
}

// validate names every problem of the flags at once, in the flags' words.
func (cfg *serveConfig) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.HTTPAddr == "" {
		add("the HTTP address is empty")
	} else if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil {
		add("bad HTTP address %q: %v", cfg.HTTPAddr, err)
	}
	if !slices.Contains(core.StoreDrivers(), cfg.Store) {
		add("unknown store %q (registered: %s)", cfg.Store, strings.Join(core.StoreDrivers(), ", "))
	}
	if cfg.Store != "sqlite" && cfg.DSN == "" {
		add("--store %s needs --dsn", cfg.Store)
	}
	if cfg.DSN == "" && cfg.DBPath == "" {
		add("the database path is empty")
	}
	seen := map[string]bool{}
	for _, k := range cfg.Kinds {
		switch {
		case core.ReservedKind(k):
			add("kind %q is reserved (a route of the server)", k)
		case core.CheckKind(k) != nil:
			add("bad kind %q: %v", k, core.CheckKind(k))
		case seen[k]:
			add("kind %q is named twice", k)
		}
		seen[k] = true
	}
	dyn := regexp.MustCompile(dynamicKindPattern)
	for kind, field := range cfg.Scopes {
		switch {
		case len(cfg.Kinds) > 0 && !seen[kind]:
			add("scope for kind %q, which is not served (add --kind %s)", kind, kind)
		case len(cfg.Kinds) == 0 && !dyn.MatchString(kind):
			add("scope for kind %q, which does not match %s", kind, dynamicKindPattern)
		}
		if field == "" {
			add("scope for kind %q names no field", kind)
		} else if core.CheckFieldName(field) != nil {
			add("scope for kind %q: bad field %q: %v", kind, field, core.CheckFieldName(field))
		}
	}
	if len(cfg.Scopes) > 0 && cfg.TokensFile == "" {
		add("a scope needs authentication: name a tokens file with --tokens")
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		add("--tls-cert and --tls-key go together")
	}
	off := 0
	for _, v := range cfg.Off {
		if *v {
			off++
		}
	}
	if off > 0 && off == len(server.Transports()) {
		add("every transport is switched off: nothing to serve")
	}
	switch cfg.LogFormat {
	case "", "text", "json":
	default:
		add("bad log format %q: want text or json", cfg.LogFormat)
	}
	if _, err := parseLevel(cfg.LogLevel); err != nil {
		add("%v", err)
	}
	if cfg.ShutdownTimeout < 0 {
		add("negative shutdown timeout %v", cfg.ShutdownTimeout)
	}
	if cfg.MaxBody < 0 {
		add("negative body limit %d", cfg.MaxBody)
	}
	return errors.Join(errs...)
}

// serverConfig translates the flags into the server config offsync.Serve
// runs, checked as a config file would be.
func (cfg *serveConfig) serverConfig() (*config.Server, error) {
	dsn := cfg.DSN
	if dsn == "" {
		dsn = cfg.DBPath
	}
	sc := &config.Server{Store: config.Store{Driver: cfg.Store, DSN: dsn}}
	v := &sc.Server
	v.HTTP = cfg.HTTPAddr
	v.Kinds = cfg.Kinds
	if len(cfg.Kinds) == 0 {
		v.DynamicKinds = dynamicKindPattern
	}
	v.TokensFile = cfg.TokensFile
	v.Scopes = cfg.Scopes
	v.MaxBody = cfg.MaxBody
	v.ShutdownTimeout = cfg.ShutdownTimeout
	v.AllowInsecure = cfg.AllowInsecure
	if cfg.TLSCert != "" {
		v.TLS = &config.TLS{Cert: cfg.TLSCert, Key: cfg.TLSKey}
	}
	changed := false
	transports := map[string]config.ServeTransport{}
	for _, name := range server.Transports() {
		if off := cfg.Off[name]; off != nil && *off {
			changed = true
			continue
		}
		var t config.ServeTransport
		if a := cfg.Addrs[name]; a != nil && *a != "" {
			t.Addr, changed = *a, true
		}
		transports[name] = t
	}
	if changed {
		v.Transports = transports
	}
	if err := sc.Check(); err != nil {
		return nil, err
	}
	if _, err := sc.Principals(); err != nil { // a bad tokens file is the user's mistake
		return nil, err
	}
	return sc, nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("bad log level %q: want debug, info, warn or error", s)
}

// newLogger returns the structured logger of cfg.
func (cfg *serveConfig) newLogger() *slog.Logger {
	out := cfg.LogOutput
	if out == nil {
		out = os.Stderr
	}
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}

// runServe serves sc (from the flags or a config file) until ctx is done.
func runServe(ctx context.Context, sc *config.Server, log *slog.Logger) error {
	log.Info("offsync serve", "version", moduleVersion(), "protocol", protocolVersion)
	err := offsync.ServeWith(ctx, sc, &offsync.ServeOptions{Logger: log})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// stringMapFlag is a repeatable KEY=VALUE flag.
type stringMapFlag struct {
	m    *map[string]string
	name string
}

func (f stringMapFlag) String() string {
	if f.m == nil || *f.m == nil {
		return ""
	}
	var parts []string
	for k, v := range *f.m {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (f stringMapFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" || v == "" {
		return fmt.Errorf("want KIND=FIELD, got %q", s)
	}
	if *f.m == nil {
		*f.m = map[string]string{}
	}
	if _, dup := (*f.m)[k]; dup {
		return fmt.Errorf("%s %q given twice", f.name, k)
	}
	(*f.m)[k] = v
	return nil
}

func (f stringMapFlag) Type() string { return "KIND=FIELD" }

var (
	serveFlags      = defaultServeConfig()
	serveConfigPath string
)

// configExcludes are the flags a server config file replaces.
var configExcludes = []string{"db", "store", "dsn", "kind", "tokens", "scope", "max-body", "tls-cert", "tls-key", "allow-insecure"}

var serveCmd = &cobra.Command{
	Use:   "serve",
	Short: "Run the reference sync server (every wire form over SQLite or Postgres)",
	Long: `Run offsync's reference authority over a store — embedded SQLite by default
(durable on every commit, synchronous=FULL), or Postgres — and serve it in every
wire form the binary has: REST (with batch, server-sent events and /health),
WebSocket (/ws), GraphQL (/graphql) on the HTTP listener, gRPC on its own.
docs/protocol.md is the wire contract; GET /health lists what is served where.

Flags and a server config (--config, docs/config.md) are two ways to say the
same thing: the flags are translated into a config and served the same way.

Kinds: every --kind is served as a document kind (records are JSON objects).
With no --kind, any kind matching ` + dynamicKindPattern + ` is served and created
on first write.

Transports: all are served by default; --no-NAME switches one off, and a
transport with its own listener takes its address from --NAME ADDR (gRPC:
the HTTP port plus one by default).

Authentication: --tokens FILE names a file of bearer tokens, one per line:

  # token           principal
  s3cr3t-alice      alice
  s3cr3t-bob        bob

(or a JSON object {"s3cr3t-alice": "alice", ...}). Without it every caller is
anonymous. --scope KIND=FIELD limits each principal to the records of KIND whose
FIELD is its principal ID; new records get FIELD set to the caller's ID.

TLS: --tls-cert and --tls-key serve every listener over TLS. Without TLS the
server listens only on loopback addresses, unless --allow-insecure (behind a
proxy that terminates TLS).

The server stops on SIGINT or SIGTERM: streams end, requests in flight get
--shutdown-timeout to finish, and the store is closed.`,
	Example: `  # Start on a fresh directory, then check it answers:
  offsync serve
  curl localhost:8080/health

  # Postgres, two kinds, tokens, notes private to their owner, over TLS:
  offsync serve --store postgres --dsn "$DATABASE_URL" --http 0.0.0.0:8443 \
      --tls-cert cert.pem --tls-key key.pem \
      --kind note --kind task --tokens tokens.txt --scope note=owner

  # A free port (logged as "listening on ADDR"), REST only, JSON logs:
  offsync serve --http 127.0.0.1:0 --no-websocket --no-graphql --no-grpc --log-format json

  # Compose the server from a config file (store, kinds, tokens, transports):
  offsync serve --config server.yaml`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		f := serveFlags
		f.LogOutput = cmd.ErrOrStderr()
		var sc *config.Server
		if serveConfigPath != "" {
			var clash []string
			for _, name := range configExcludes {
				if cmd.Flags().Changed(name) {
					clash = append(clash, "--"+name)
				}
			}
			for _, name := range server.Transports() {
				if cmd.Flags().Changed("no-"+name) || cmd.Flags().Changed(name) {
					clash = append(clash, "--no-"+name+"/--"+name)
				}
			}
			if len(clash) > 0 {
				return usageErrorf("--config excludes %s: set them in the config", strings.Join(clash, ", "))
			}
			cfg, err := config.LoadServer(serveConfigPath)
			if err != nil {
				return usageError{err}
			}
			if cmd.Flags().Changed("http") {
				cfg.Server.HTTP = f.HTTPAddr
			}
			if cmd.Flags().Changed("shutdown-timeout") {
				cfg.Server.ShutdownTimeout = f.ShutdownTimeout
			}
			sc = cfg
			f.Kinds, f.Scopes, f.TokensFile = nil, nil, ""
			if err := f.validate(); err != nil {
				return usageError{err}
			}
		} else {
			if err := f.validate(); err != nil {
				return usageError{err}
			}
			var err error
			if sc, err = f.serverConfig(); err != nil {
				return usageError{err}
			}
		}
		ctx, stop := signalContext(cmd)
		defer stop()
		return runServe(ctx, sc, f.newLogger())
	},
}

func init() {
	f := serveCmd.Flags()
	c := &serveFlags
	f.StringVarP(&serveConfigPath, "config", "c", "", "server config file (YAML, docs/config.md); excludes the store, kind, token, scope, TLS and transport flags")
	f.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "HTTP listen address of REST, WebSocket and GraphQL (port 0 picks a free port)")
	f.StringVar(&c.Store, "store", c.Store, "store driver: sqlite or postgres")
	f.StringVar(&c.DSN, "dsn", "", "what the store opens: a file or file: URI for sqlite (default: --db), a postgres:// URL for postgres")
	f.StringVar(&c.DBPath, "db", c.DBPath, "SQLite database file, created when missing (same as --dsn for sqlite)")
	f.StringArrayVar(&c.Kinds, "kind", nil, "a document kind to serve (repeatable; none: any kind matching "+dynamicKindPattern+")")
	f.StringVar(&c.TokensFile, "tokens", "", `file of bearer tokens, "TOKEN PRINCIPAL" per line (none: no authentication)`)
	f.Var(stringMapFlag{m: &c.Scopes, name: "scope"}, "scope", "limit KIND to the records whose FIELD is the caller's principal ID (repeatable; needs --tokens)")
	f.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate (PEM) for every listener; needs --tls-key")
	f.StringVar(&c.TLSKey, "tls-key", "", "TLS private key (PEM)")
	f.BoolVar(&c.AllowInsecure, "allow-insecure", false, "listen on a non-loopback address without TLS (behind a TLS-terminating proxy)")
	for _, name := range server.Transports() {
		c.Off[name] = f.Bool("no-"+name, false, "do not serve the "+name+" transport")
		if d, err := server.LookupTransport(name); err == nil && d.OwnsListener() {
			c.Addrs[name] = f.String(name, "", name+" listen address (default: the HTTP port plus one)")
		}
	}
	f.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	f.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long requests in flight may run on shutdown")
	f.Int64Var(&c.MaxBody, "max-body", c.MaxBody, "largest request body or message in bytes (larger is 413)")
	_ = serveCmd.MarkFlagFilename("db", "db", "sqlite", "sqlite3")
	_ = serveCmd.MarkFlagFilename("tokens")
	_ = serveCmd.MarkFlagFilename("config", "yaml", "yml")
	rootCmd.AddCommand(serveCmd)
}
