package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/drivers/transport/rest"
	"github.com/offsync/offsync/server"
	"github.com/spf13/cobra"
)

// dynamicKindPattern is the kinds served when no --kind is named.
const dynamicKindPattern = `^[a-z][a-z0-9_]*$`

// reservedKinds are path names of the REST contract, never kinds.
var reservedKinds = []string{"batch", "events", "health"}

// serveConfig is everything `offsync serve` needs. The flags fill it, and so
// can a configuration file; runServe does the rest.
type serveConfig struct {
	// HTTPAddr is the REST listen address; port 0 picks a free port (the
	// bound address is logged as "listening on ADDR").
	HTTPAddr string
	// DBPath is the SQLite database file (created when missing).
	DBPath string
	// Kinds are the document kinds served; none means any kind matching
	// dynamicKindPattern.
	Kinds []string
	// TokensFile maps bearer tokens to principals (see parseTokens); "" with
	// no Tokens means no authentication: every caller is anonymous.
	TokensFile string
	// Tokens maps bearer tokens to principal IDs, added to TokensFile's.
	Tokens map[string]string
	// Scopes maps a kind to the field that holds its owner's principal ID:
	// a caller reads and writes only the rows whose field is its own ID.
	Scopes map[string]string
	// LogFormat is "text" (default) or "json"; LogLevel is debug, info
	// (default), warn or error. Logs go to LogOutput (default stderr).
	LogFormat string
	LogLevel  string
	LogOutput io.Writer
	// ShutdownTimeout bounds the wait for requests in flight on shutdown
	// (default 10s).
	ShutdownTimeout time.Duration
	// MaxBody bounds a request body in bytes (default 4 MiB).
	MaxBody int64
}

// defaultServeConfig returns the defaults of `offsync serve`.
func defaultServeConfig() serveConfig {
	return serveConfig{
		HTTPAddr:        "127.0.0.1:8080",
		DBPath:          "./offsync.db",
		LogFormat:       "text",
		LogLevel:        "info",
		ShutdownTimeout: 10 * time.Second,
		MaxBody:         4 << 20,
	}
}

// validate names every problem of cfg at once.
func (cfg *serveConfig) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if cfg.HTTPAddr == "" {
		add("the HTTP address is empty")
	} else if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err != nil {
		add("bad HTTP address %q: %v", cfg.HTTPAddr, err)
	}
	if cfg.DBPath == "" {
		add("the database path is empty")
	}
	seen := map[string]bool{}
	for _, k := range cfg.Kinds {
		switch {
		case slices.Contains(reservedKinds, k):
			add("kind %q is reserved by the REST contract", k)
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
	if len(cfg.Scopes) > 0 && cfg.TokensFile == "" && len(cfg.Tokens) == 0 {
		add("a scope needs authentication: name a tokens file with --tokens")
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

// parseTokens reads a tokens file: one "TOKEN PRINCIPAL" pair per line
// (separated by spaces or tabs; blank lines and lines starting with # are
// ignored), or a JSON object {"TOKEN": "PRINCIPAL", ...}. A token may appear
// once; several tokens may map to one principal.
func parseTokens(data []byte) (map[string]string, error) {
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		var m map[string]string
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("%w: tokens JSON: %v", core.ErrInvalid, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: tokens JSON: data after the object", core.ErrInvalid)
		}
		for tok, p := range m {
			if tok == "" || p == "" || strings.ContainsAny(tok, " \t\r\n") {
				return nil, fmt.Errorf("%w: tokens JSON: bad entry %q: %q", core.ErrInvalid, tok, p)
			}
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%w: the tokens file holds no token", core.ErrInvalid)
		}
		return m, nil
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: tokens file line %d: want \"TOKEN PRINCIPAL\", got %d fields", core.ErrInvalid, n, len(f))
		}
		if _, dup := m[f[0]]; dup {
			return nil, fmt.Errorf("%w: tokens file line %d: token given twice", core.ErrInvalid, n)
		}
		m[f[0]] = f[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: tokens file: %v", core.ErrInvalid, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: the tokens file holds no token", core.ErrInvalid)
	}
	return m, nil
}

// serverOptions turns cfg into the authority's options.
func (cfg *serveConfig) serverOptions(log *slog.Logger) (*server.Options, error) {
	opts := &server.Options{Logger: log}
	if len(cfg.Kinds) == 0 {
		opts.DynamicKinds = regexp.MustCompile(dynamicKindPattern)
	}
	for _, k := range cfg.Kinds {
		opts.Tables = append(opts.Tables, core.Documents(k))
	}
	tokens := map[string]string{}
	if cfg.TokensFile != "" {
		data, err := os.ReadFile(cfg.TokensFile)
		if err != nil {
			return nil, fmt.Errorf("tokens: %w", err)
		}
		tokens, err = parseTokens(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.TokensFile, err)
		}
	}
	for tok, p := range cfg.Tokens {
		tokens[tok] = p
	}
	if len(tokens) > 0 {
		opts.Authenticate = func(_ context.Context, token string) (core.Principal, error) {
			if id, ok := tokens[token]; ok && token != "" {
				return core.Principal{ID: id}, nil
			}
			return core.Principal{}, fmt.Errorf("%w: unknown token", core.ErrUnauthorized)
		}
	}
	if len(cfg.Scopes) > 0 {
		scopes := cfg.Scopes
		opts.Scope = func(_ context.Context, p core.Principal, kind string) (*core.Filter, error) {
			field, ok := scopes[kind]
			if !ok {
				return nil, nil
			}
			return &core.Filter{Field: field, Values: []string{p.ID}}, nil
		}
	}
	return opts, nil
}

// runServe serves the REST contract until ctx is done, then shuts down:
// event streams end, requests in flight get ShutdownTimeout to finish, and
// the store is closed.
func runServe(ctx context.Context, cfg serveConfig) error {
	if err := cfg.validate(); err != nil {
		return usageError{err}
	}
	log := cfg.newLogger()
	opts, err := cfg.serverOptions(log)
	if err != nil {
		return usageError{err}
	}
	store, err := sqlite.Open(ctx, cfg.DBPath, &sqlite.Options{Synchronous: "FULL"})
	if err != nil {
		return fmt.Errorf("open the database %s: %w", cfg.DBPath, err)
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("closing the database", "db", cfg.DBPath, "err", err)
		}
	}()
	svc, err := server.New(ctx, store, opts)
	if err != nil {
		return fmt.Errorf("start the authority: %w", err)
	}
	defer svc.Close()

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	// Event streams never go idle: end them when shutdown starts, so that
	// Shutdown waits only for ordinary requests.
	streams, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	handler := rest.NewHandler(svc, &rest.HandlerOptions{MaxBody: cfg.MaxBody, Logger: log})
	srv := &http.Server{
		Handler:           endOnShutdown(streams, accessLog(log, handler)),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(endStreams)

	addr := ln.Addr().String()
	log.Info("listening on "+addr, "addr", addr, "url", "http://"+addr, "db", cfg.DBPath,
		"version", moduleVersion(), "protocol", protocolVersion)
	if len(cfg.Kinds) == 0 {
		log.Info("no --kind named: serving any kind matching "+dynamicKindPattern+" as documents",
			"pattern", dynamicKindPattern)
	} else {
		log.Info("serving kinds", "kinds", strings.Join(cfg.Kinds, ","))
	}
	if opts.Authenticate != nil {
		log.Info("authentication on: requests need a bearer token from the tokens file")
	} else {
		log.Warn("authentication off: every caller is anonymous and may read and write everything (use --tokens)")
	}
	for kind, field := range cfg.Scopes {
		log.Info("scope", "kind", kind, "field", field)
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: requests still running after %v: %w", cfg.ShutdownTimeout, err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

// endOnShutdown ends /events streams when streams is done.
func endOnShutdown(streams context.Context, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			stop := context.AfterFunc(streams, cancel)
			defer stop()
			r = r.WithContext(ctx)
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter remembers the status of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush keeps event streams streaming through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// accessLog logs every request at debug level.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		log.DebugContext(r.Context(), "request", "method", r.Method, "path", r.URL.EscapedPath(),
			"status", sw.status, "duration", time.Since(start))
	})
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

var serveFlags = defaultServeConfig()

var serveCmd = &cobra.Command{
	Use:   "serve",
	Short: "Run the reference sync server (REST over an embedded SQLite database)",
	Long: `Run offsync's reference authority: the REST contract of PROTOCOL.md (pull, push,
batch, server-sent events, /health) over an embedded SQLite database, durable on
every commit (synchronous=FULL).

Kinds: every --kind is served as a document kind (records are JSON objects).
With no --kind, any kind matching ` + dynamicKindPattern + ` is served and created
on first use.

Authentication: --tokens FILE names a file of bearer tokens, one per line:

  # token           principal
  s3cr3t-alice      alice
  s3cr3t-bob        bob

(or a JSON object {"s3cr3t-alice": "alice", ...}). Without it every caller is
anonymous. --scope KIND=FIELD limits each principal to the records of KIND whose
FIELD is its principal ID; new records get FIELD set to the caller's ID.

The server stops on SIGINT or SIGTERM: event streams end, requests in flight
get --shutdown-timeout to finish, and the database is closed.`,
	Example: `  # Start on a fresh directory, then check it answers:
  offsync serve
  curl localhost:8080/health

  # Two kinds, tokens, and notes private to their owner:
  offsync serve --db /var/lib/offsync/app.db --http 0.0.0.0:8080 \
      --kind note --kind task --tokens tokens.txt --scope note=owner

  # A free port (logged as "listening on ADDR") and JSON logs:
  offsync serve --http 127.0.0.1:0 --log-format json`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		cfg := serveFlags
		cfg.LogOutput = cmd.ErrOrStderr()
		return runServe(ctx, cfg)
	},
}

func init() {
	f := serveCmd.Flags()
	c := &serveFlags
	f.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "REST listen address (port 0 picks a free port)")
	f.StringVar(&c.DBPath, "db", c.DBPath, "SQLite database file, created when missing")
	f.StringArrayVar(&c.Kinds, "kind", nil, "a document kind to serve (repeatable; none: any kind matching "+dynamicKindPattern+")")
	f.StringVar(&c.TokensFile, "tokens", "", `file of bearer tokens, "TOKEN PRINCIPAL" per line (none: no authentication)`)
	f.Var(stringMapFlag{m: &c.Scopes, name: "scope"}, "scope", "limit KIND to the records whose FIELD is the caller's principal ID (repeatable; needs --tokens)")
	f.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	f.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug (logs every request), info, warn or error")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long requests in flight may run on shutdown")
	f.Int64Var(&c.MaxBody, "max-body", c.MaxBody, "largest request body in bytes (larger is 413)")
	_ = serveCmd.MarkFlagFilename("db", "db", "sqlite", "sqlite3")
	_ = serveCmd.MarkFlagFilename("tokens")
	rootCmd.AddCommand(serveCmd)
}
