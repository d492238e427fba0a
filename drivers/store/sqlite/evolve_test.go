package sqlite_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/uptrace/bun"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/internal/bunstore/evolvetest"
	"github.com/offsync/offsync/drivers/store/sqlite"
)

// TestSchemaEvolution: Register adds a model's new nullable or defaulted
// columns to an existing table and refuses the changes it cannot make
// safely, on a SQLite file opened again by each program version.
func TestSchemaEvolution(t *testing.T) {
	evolvetest.Run(t, func(t *testing.T) evolvetest.Opener {
		path := filepath.Join(t.TempDir(), "app.db")
		return func(t *testing.T, log *slog.Logger) (core.Store, *bun.DB) {
			s, err := sqlite.Open(t.Context(), path, &sqlite.Options{Logger: log})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { s.Close() })
			return s, s.DB()
		}
	})
}
