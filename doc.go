// Package offsync composes offline-first sync from a YAML config.
//
// The root package imports every first-party driver — the sqlite and
// postgres stores, the rest transport and the plugin resolver driver — so
// that a config can name them (composition by name, as database/sql and caddy
// do), and offers two calls:
//
//   - Open builds a replica (a *core.Engine) from a client config and the
//     program's typed tables.
//   - Serve runs the reference authority over REST from a server config.
//
// A client config:
//
//	store:     { driver: sqlite, dsn: "file:app.db" }
//	transport: { driver: rest, url: "https://api.example.com", token: "${API_TOKEN}" }
//	sync:      { interval: 5m, push_on_write: true, realtime: true }
//	conflicts:
//	  default: autoPreserve
//	  kinds:
//	    note:   clientWins
//	    shared: { plugin: ./bin/docs-resolver, sha256: "..." }
//	tables:
//	  note:   { type: document }
//	  shared: { type: document }
//
// and its use:
//
//	cfg, err := config.LoadClient("offsync.yaml")
//	if err != nil { ... } // every problem, each with its line and column
//	eng, err := offsync.Open(ctx, cfg, todos) // todos: a core.NewTable[Todo]("todo")
//	defer eng.Close()                         // closes the store and plugins too
//	go eng.Run(ctx, offsync.RunOptions(cfg)...)
//
// The schema, its defaults and ${ENV} expansion are documented in package
// config and in docs/config.md.
package offsync
