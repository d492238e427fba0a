package config

import (
	"time"
)

// Client is the configuration of a replica: the local store, the transport to
// the authority, the sync schedule, the conflict policy per kind and the
// document kinds it syncs. LoadClient and ParseClient fill in the defaults.
type Client struct {
	Store     Store            `yaml:"store"`
	Transport Transport        `yaml:"transport"`
	Sync      Sync             `yaml:"sync"`
	Conflicts Conflicts        `yaml:"conflicts"`
	Tables    map[string]Table `yaml:"tables"`

	source
}

// Server is the configuration of the reference authority served by
// `offsync serve` and offsync.Serve: its store and the server section.
type Server struct {
	Store  Store         `yaml:"store"`
	Server ServerSection `yaml:"server"`

	source
}

// Store names a store driver (core.OpenStore) and what it opens.
type Store struct {
	// Driver is the registered store driver (default "sqlite").
	Driver string `yaml:"driver"`
	// DSN is the driver's data source name: a file path or "file:" URI for
	// sqlite, a connection URL for postgres. Required.
	DSN string `yaml:"dsn"`
	// Options are driver-specific (sqlite: synchronous, busy_timeout;
	// postgres: max_open_conns, max_idle_conns, channel, notify,
	// poll_interval, retry_attempts); the driver refuses
	// a key it does not know.
	Options map[string]any `yaml:"options"`
}

// Transport names a transport driver (core.OpenTransport) and the authority.
type Transport struct {
	// Driver is the registered transport driver (default "rest").
	Driver string `yaml:"driver"`
	// URL is the authority's address. Required.
	URL string `yaml:"url"`
	// Token is the bearer token; write it as "${ENV_VAR}". It is handed to
	// the driver as the option "token".
	Token string `yaml:"token"`
	// CAFile is a PEM file of the certificates the client trusts for an
	// https/wss/grpcs URL in place of the system's roots (a private CA, a
	// self-signed server); relative to the config file. It is handed to
	// the driver as the option "ca_file".
	CAFile string `yaml:"ca_file"`
	// Options are driver-specific (rest: timeout).
	Options map[string]any `yaml:"options"`
}

// Sync is the schedule of Engine.Run and the engine's limits. A zero number
// takes the engine's default.
type Sync struct {
	// Interval between periodic syncs. Parsing sets 5m when the key is
	// absent; "0s" turns the timer off.
	Interval time.Duration `yaml:"interval"`
	// PushOnWrite pushes soon after each local write (default false).
	PushOnWrite bool `yaml:"push_on_write"`
	// Debounce is how long a push on write waits for more writes (default 200ms).
	Debounce time.Duration `yaml:"debounce"`
	// Realtime pulls when the authority announces changes (default false).
	Realtime bool `yaml:"realtime"`
	// PageSize is the pull page size (default 500).
	PageSize int `yaml:"page_size"`
	// BatchSize is the most ops in one push (default 500).
	BatchSize int `yaml:"batch_size"`
	// MaxAttempts is an op's attempt budget before it is a dead letter (default 8).
	MaxAttempts int `yaml:"max_attempts"`
	// ResyncInterval schedules a full pull when the last is older (default 0, never).
	ResyncInterval time.Duration `yaml:"resync_interval"`
}

// Conflicts chooses the conflict strategy per kind.
type Conflicts struct {
	// Default applies to every kind not named in Kinds (default autoPreserve).
	Default Strategy `yaml:"default"`
	// Kinds maps a kind to its strategy.
	Kinds map[string]Strategy `yaml:"kinds"`
}

// Strategy is a built-in strategy, written as its name (autoPreserve,
// serverWins, clientWins, lastWriteWins), or a plugin resolver, written as a
// mapping {plugin: path, sha256: hex, timeout: duration}.
type Strategy struct {
	// Name is the built-in strategy; empty for a plugin.
	Name string `yaml:"-"`
	// Plugin is the path of a resolver plugin binary, relative to the config
	// file's directory unless absolute.
	Plugin string `yaml:"plugin"`
	// SHA256 pins the plugin binary's checksum (64 hex digits); recommended.
	SHA256 string `yaml:"sha256"`
	// Timeout bounds one call to the plugin (default: the plugin driver's).
	Timeout time.Duration `yaml:"timeout"`
}

// IsPlugin reports whether s names a plugin resolver.
func (s Strategy) IsPlugin() bool { return s.Plugin != "" }

// String returns the strategy's name, or "plugin <path>".
func (s Strategy) String() string {
	if s.IsPlugin() {
		return "plugin " + s.Plugin
	}
	return s.Name
}

// Table describes a kind the replica syncs as a document table. Typed tables
// (bun models) come from Go code: pass them to offsync.Open.
type Table struct {
	// Type is the table's type; only "document" (the default) is allowed.
	Type string `yaml:"type"`
}

// ServerSection configures the authority and its HTTP listener.
type ServerSection struct {
	// HTTP is the listen address (default "127.0.0.1:8080").
	HTTP string `yaml:"http"`
	// Kinds are the document kinds served.
	Kinds []string `yaml:"kinds"`
	// DynamicKinds is a regular expression: any kind matching it is served
	// as a document kind too. Kinds or DynamicKinds (or both) is required.
	DynamicKinds string `yaml:"dynamic_kinds"`
	// Tokens are the accepted bearer tokens and their principals. With none,
	// every caller is the anonymous principal.
	Tokens []Token `yaml:"tokens"`
	// Scope limits what each principal reads and writes; see Scope.
	Scope *Scope `yaml:"scope"`
	// TokenSecret signs page tokens; set it (as "${ENV_VAR}") when several
	// servers share a database or tokens must survive a restart (default:
	// random per process).
	TokenSecret string `yaml:"token_secret"`
	// MaxBatch caps the ops of one push (default 1000).
	MaxBatch int `yaml:"max_batch"`
	// MaxLimit caps the rows of one page (default 1000).
	MaxLimit int `yaml:"max_limit"`
	// DefaultLimit is the page size when a pull asks for none (default 500).
	DefaultLimit int `yaml:"default_limit"`
	// IdempotencyRetention is how long answers to applied ops are kept
	// (default 720h, 30 days).
	IdempotencyRetention time.Duration `yaml:"idempotency_retention"`
	// TombstoneRetention is how long tombstones are kept before they are
	// collected (default 2160h, 90 days; 0 keeps them forever). A replica
	// whose cursor is older than what was collected pulls its kinds again
	// from the start (reset_required).
	TombstoneRetention *time.Duration `yaml:"tombstone_retention"`
	// MaxBody bounds a request body in bytes (default 4194304, 4 MiB).
	MaxBody int64 `yaml:"max_body"`
	// Heartbeat is the keep-alive period of every long-lived stream (REST
	// events, WebSocket, gRPC Subscribe, GraphQL subscriptions); default 15s.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Transports are the wire forms served, by registered name (rest,
	// websocket, graphql, grpc, or a third party's). Absent: every server
	// half registered in the binary, each at its default place.
	Transports map[string]ServeTransport `yaml:"transports"`
	// TokensFile is a file of bearer tokens ("TOKEN PRINCIPAL" per line, or
	// a JSON object), relative to the config file; added to Tokens.
	TokensFile string `yaml:"tokens_file"`
	// Scopes maps a kind to the business field holding its owner's
	// principal ID (a per-kind Scope); a kind may not be in both.
	Scopes map[string]string `yaml:"scopes"`
	// MaxDepth bounds how deeply a record's business fields nest (default
	// 64); MaxRecordBytes their size as JSON (default 1 MiB); MaxPageBytes
	// the bytes of one pull page (default 4 MiB, the next page continues);
	// MaxDynamicKinds how many kinds dynamic_kinds may create (default 256).
	MaxDepth        int `yaml:"max_depth"`
	MaxRecordBytes  int `yaml:"max_record_bytes"`
	MaxPageBytes    int `yaml:"max_page_bytes"`
	MaxDynamicKinds int `yaml:"max_dynamic_kinds"`
	// MaxInFlight bounds the requests in flight on one connection of a
	// multiplexing wire form (WebSocket, gRPC); default 64.
	MaxInFlight int `yaml:"max_in_flight"`
	// Listener limits of the HTTP listener (and of every listener a
	// transport owns). Zero takes the default.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"` // default 10s
	ReadTimeout       time.Duration `yaml:"read_timeout"`        // whole request; default 60s
	WriteTimeout      time.Duration `yaml:"write_timeout"`       // whole answer, not streams; default 60s
	IdleTimeout       time.Duration `yaml:"idle_timeout"`        // keep-alive connections; default 120s
	MaxConns          int           `yaml:"max_conns"`           // open connections per listener; default 10000
	// ShutdownTimeout bounds the wait for calls in flight on shutdown
	// (default 10s).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// TLS serves every listener over TLS (certificate and key files,
	// relative to the config file).
	TLS *TLS `yaml:"tls"`
	// JWT accepts signed tokens (beside Tokens, which keep working); see JWT.
	JWT *JWT `yaml:"jwt"`
	// RateLimit bounds the requests of each principal; see RateLimit.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// AllowInsecure lets the server listen on a non-loopback address
	// without TLS (bearer tokens then cross the network in clear text).
	AllowInsecure bool `yaml:"allow_insecure"`
	// UI serves the operator's dashboard at /ui on the HTTP listener (an
	// administrator's token required); false turns it off. Absent: on
	// (UIEnabled).
	UI *bool `yaml:"ui"`
	// Metrics serves the authority's figures in the Prometheus format at
	// /metrics on the HTTP listener (an administrator's token required);
	// false turns it off. Absent: on (MetricsEnabled).
	Metrics *bool `yaml:"metrics"`
}

// UIEnabled reports whether the dashboard is served: server.ui is absent
// or true.
func (s ServerSection) UIEnabled() bool { return s.UI == nil || *s.UI }

// MetricsEnabled reports whether /metrics is served: server.metrics is
// absent or true.
func (s ServerSection) MetricsEnabled() bool { return s.Metrics == nil || *s.Metrics }

// ServeTransport places one wire form: Path on the shared HTTP listener
// (rest, websocket, graphql) or Addr for one with its own listener (grpc);
// empty takes the driver's default. Options are the driver's own.
type ServeTransport struct {
	Path    string         `yaml:"path"`
	Addr    string         `yaml:"addr"`
	Options map[string]any `yaml:"options"`
}

// TLS names a certificate and its key, PEM files.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Token maps a bearer token to a principal.
type Token struct {
	// Token is the secret; write it as "${ENV_VAR}". Required.
	Token string `yaml:"token"`
	// Principal is the principal's ID. Required.
	Principal string `yaml:"principal"`
	// Attrs are the principal's attributes.
	Attrs map[string]string `yaml:"attrs"`
}

// Scope limits every pull and push of a principal to the rows whose business
// field Field holds the principal's ID; new rows get Field set to it.
type Scope struct {
	// Field is the business field holding the owner's principal ID. Required.
	Field string `yaml:"field"`
	// Kinds are the scoped kinds (default: every kind).
	Kinds []string `yaml:"kinds"`
}

// Defaults, as documented in docs/config.md.
const (
	DefaultStoreDriver          = "sqlite"
	DefaultTransportDriver      = "rest"
	DefaultInterval             = 5 * time.Minute
	DefaultDebounce             = 200 * time.Millisecond
	DefaultPageSize             = 500
	DefaultBatchSize            = 500
	DefaultMaxAttempts          = 8
	DefaultStrategy             = "autoPreserve"
	DefaultTableType            = "document"
	DefaultHTTP                 = "127.0.0.1:8080"
	DefaultMaxBatch             = 1000
	DefaultMaxLimit             = 1000
	DefaultPageLimit            = 500
	DefaultIdempotencyRetention = 30 * 24 * time.Hour
	DefaultTombstoneRetention   = 90 * 24 * time.Hour
	DefaultMaxBody              = 4 << 20
	DefaultHeartbeat            = 15 * time.Second
	DefaultReadHeaderTimeout    = 10 * time.Second
	DefaultReadTimeout          = 60 * time.Second
	DefaultWriteTimeout         = 60 * time.Second
	DefaultIdleTimeout          = 120 * time.Second
	DefaultMaxConns             = 10000
	DefaultShutdownTimeout      = 10 * time.Second
)
