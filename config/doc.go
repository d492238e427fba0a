// Package config is offsync's YAML configuration: a client config (a
// replica: its store, transport, sync schedule, conflict policy per kind and
// document kinds) and a server config (the reference authority). The root
// package offsync turns them into running parts (offsync.Open, offsync.Serve)
// by finding the drivers they name in the core registry.
//
// # Client
//
//	store:                      # required
//	  driver: sqlite            # default sqlite; or postgres
//	  dsn: "file:app.db"        # required; a relative file is beside this config
//	  options: {}               # driver-specific; sqlite: synchronous, busy_timeout
//	transport:                  # required
//	  driver: rest              # default rest
//	  url: https://api.example.com   # required
//	  token: "${API_TOKEN}"     # bearer token
//	  options: {timeout: 30s}   # driver-specific
//	sync:
//	  interval: 5m              # default 5m; 0s: no timer
//	  push_on_write: false      # default false
//	  debounce: 200ms           # default 200ms
//	  realtime: false           # default false
//	  page_size: 500            # default 500
//	  batch_size: 500           # default 500
//	  max_attempts: 8           # default 8
//	  resync_interval: 0s       # default 0s: never
//	conflicts:
//	  default: autoPreserve     # default autoPreserve
//	  kinds:
//	    settings: clientWins    # autoPreserve, serverWins, clientWins, lastWriteWins, manual
//	    shared:                 # or a plugin resolver binary
//	      plugin: ./bin/resolver  # relative to the config file's directory
//	      sha256: "<64 hex digits>"
//	      timeout: 5s
//	tables:                     # document kinds; typed tables come from Go code
//	  note: {type: document}    # type defaults to document, the only type here
//
// # Server
//
//	store: {driver: sqlite, dsn: server.db, options: {synchronous: FULL}}
//	server:
//	  http: 127.0.0.1:8080      # default 127.0.0.1:8080
//	  kinds: [note, task]       # document kinds served
//	  dynamic_kinds: "^[a-z]+$" # serve any matching kind too; kinds or this is required
//	  tokens:                   # none: every caller is anonymous
//	    - {token: "${ALICE_TOKEN}", principal: alice, attrs: {team: red}}
//	  scope: {field: owner, kinds: [note]}  # rows whose owner is the caller; needs tokens
//	  token_secret: "${PAGE_TOKEN_SECRET}"  # default: random per process
//	  max_batch: 1000           # default 1000
//	  max_limit: 1000           # default 1000
//	  default_limit: 500        # default 500
//	  idempotency_retention: 720h  # default 720h
//	  tombstone_retention: 2160h   # default 2160h (90 days); 0 keeps tombstones forever
//	  max_body: 4194304         # default 4 MiB
//	  heartbeat: 15s            # default 15s
//	  transports:               # default: every registered one at its place
//	    rest: {}                # mounted at /
//	    websocket: {path: /ws}
//	    grpc: {addr: 127.0.0.1:8081}  # default: the HTTP port plus one
//	  tokens_file: tokens.txt   # "TOKEN PRINCIPAL" lines, relative to this file
//	  scopes: {note: owner}     # a scope field per kind
//	  tls: {cert: cert.pem, key: key.pem}  # without it: loopback addresses only
//	  allow_insecure: false     # serve a non-loopback address without TLS
//	  read_timeout: 60s         # and write_timeout, idle_timeout,
//	  max_conns: 10000          # read_header_timeout, shutdown_timeout, max_in_flight
//
// # Decoding
//
// Decoding is strict: an unknown key, a repeated key or a value of the wrong
// shape is an error with its line and column. Loading does not stop at the
// first problem: the error it returns is an errors.Join of *Error values, one
// per problem, in file order (Problems unpacks them), each wrapping
// core.ErrInvalid or core.ErrUnknownDriver.
//
// Durations are strings such as "30s", "5m" or "1h30m" (0 is also accepted).
//
// # Secrets
//
// ${NAME} in any string value is replaced with the environment variable
// NAME; it is the one way to bring a secret into a config. An unset variable
// is an error naming it (an empty one is allowed). $$ is a literal $; a $
// followed by anything else stays as written, so "^[a-z]+$" needs no
// escaping. Keys are never expanded.
package config
