package bunstore

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// migrations[i] brings the system schema from version i to i+1. Each runs
// once, in the write transaction of the Register that finds it missing, and
// is recorded in offsync_schema. Append only; never edit a released step.
var migrations = []func(d Dialect) []string{
	func(d Dialect) []string {
		j := d.JSONType()
		return []string{
			`CREATE TABLE IF NOT EXISTS offsync_outbox (
				seq ` + d.SerialPrimaryKey() + `,
				op_id TEXT NOT NULL UNIQUE,
				kind TEXT NOT NULL,
				id TEXT NOT NULL,
				type TEXT NOT NULL,
				payload TEXT,
				base_updated_at BIGINT,
				base_payload TEXT,
				changed_fields TEXT,
				edited_at BIGINT,
				force BOOLEAN NOT NULL DEFAULT FALSE,
				enqueued_at BIGINT,
				tx_id TEXT NOT NULL DEFAULT '',
				schema_version INTEGER NOT NULL DEFAULT 0,
				attempts INTEGER NOT NULL DEFAULT 0,
				next_attempt_at BIGINT,
				last_error TEXT NOT NULL DEFAULT '',
				state TEXT NOT NULL
			)`,
			`CREATE INDEX IF NOT EXISTS offsync_outbox_kind_id ON offsync_outbox (kind, id)`,
			`CREATE TABLE IF NOT EXISTS offsync_cursors (
				kind TEXT PRIMARY KEY,
				updated_at BIGINT,
				id TEXT NOT NULL DEFAULT ''
			)`,
			`CREATE TABLE IF NOT EXISTS offsync_conflicts (
				op_id TEXT PRIMARY KEY,
				kind TEXT NOT NULL,
				id TEXT NOT NULL,
				type TEXT NOT NULL,
				base TEXT,
				local TEXT,
				server TEXT,
				changed_fields TEXT,
				detected_at BIGINT
			)`,
			`CREATE INDEX IF NOT EXISTS offsync_conflicts_kind_id ON offsync_conflicts (kind, id)`,
			`CREATE TABLE IF NOT EXISTS offsync_meta (
				key TEXT PRIMARY KEY,
				value TEXT NOT NULL
			)`,
			`CREATE TABLE IF NOT EXISTS offsync_versions (
				kind TEXT PRIMARY KEY,
				last BIGINT NOT NULL
			)`,
			`CREATE TABLE IF NOT EXISTS offsync_idempotency (
				principal TEXT NOT NULL,
				op_id TEXT NOT NULL,
				request_hash TEXT NOT NULL,
				status INTEGER NOT NULL,
				record TEXT,
				created_at BIGINT NOT NULL,
				PRIMARY KEY (principal, op_id)
			)`,
			`CREATE INDEX IF NOT EXISTS offsync_idempotency_created ON offsync_idempotency (created_at)`,
			`CREATE TABLE IF NOT EXISTS offsync_documents (
				kind TEXT NOT NULL,
				id TEXT NOT NULL,
				updated_at BIGINT,
				deleted_at BIGINT,
				edited_at BIGINT,
				deleted_at_local BIGINT,
				data ` + j + ` NOT NULL,
				PRIMARY KEY (kind, id)
			)`,
			`CREATE INDEX IF NOT EXISTS offsync_documents_feed ON offsync_documents (kind, updated_at, id)`,
		}
	},
	// 2: the per-kind horizon of tombstone collection (collect.go).
	func(d Dialect) []string {
		return []string{`CREATE TABLE IF NOT EXISTS offsync_horizons (
			kind TEXT PRIMARY KEY,
			horizon BIGINT NOT NULL
		)`}
	},
	// 3: an idempotency record keeps its answer in columns (authority.go,
	// idemRow), written as they are, instead of one JSON text of the whole
	// record. The authority stores only what it cannot rebuild from a
	// re-sent request (the version columns, and the data when it is not the
	// op's payload), so most rows have no data. Rows written before keep
	// their JSON in record and are read from it. (Making the table WITHOUT
	// ROWID on SQLite was measured and refused: with the engine's random op
	// ids, the inserts scattered over the wider rows write more pages.)
	func(d Dialect) []string {
		var out []string
		for _, c := range []string{"kind TEXT", "id TEXT", "updated_at BIGINT", "deleted_at BIGINT", "edited_at BIGINT", "data TEXT"} {
			out = append(out, "ALTER TABLE offsync_idempotency ADD COLUMN "+c)
		}
		return out
	},
}

// SchemaVersion is the system schema version this code migrates to.
func SchemaVersion() int { return len(migrations) }

// migrate runs the missing migrations inside the write transaction db.
func migrate(ctx context.Context, db bun.IDB, d Dialect) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS offsync_schema (
		version INTEGER PRIMARY KEY,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return fmt.Errorf("offsync: %s: create offsync_schema: %w", d.Name(), err)
	}
	var cur int
	if err := db.NewRaw("SELECT COALESCE(MAX(version), 0) FROM offsync_schema").Scan(ctx, &cur); err != nil {
		return fmt.Errorf("offsync: %s: read schema version: %w", d.Name(), err)
	}
	if cur > len(migrations) {
		return fmt.Errorf("offsync: %s: database schema version %d is newer than this program's %d", d.Name(), cur, len(migrations))
	}
	for v := cur; v < len(migrations); v++ {
		for _, stmt := range migrations[v](d) {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("offsync: %s: migration %d: %w", d.Name(), v+1, err)
			}
		}
		if _, err := db.NewRaw("INSERT INTO offsync_schema (version, applied_at) VALUES (?, ?)",
			v+1, time.Now().UnixMicro()).Exec(ctx); err != nil {
			return fmt.Errorf("offsync: %s: record migration %d: %w", d.Name(), v+1, err)
		}
	}
	return nil
}
