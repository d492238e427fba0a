package postgres_test

import (
	"log/slog"
	"testing"

	"github.com/uptrace/bun"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/internal/bunstore/evolvetest"
	"github.com/offsync/offsync/drivers/store/postgres"
	"github.com/offsync/offsync/internal/pgtest"
)

// TestSchemaEvolution: Register adds a model's new nullable or defaulted
// columns to an existing table and refuses the changes it cannot make
// safely, on a Postgres database opened again by each program version.
func TestSchemaEvolution(t *testing.T) {
	evolvetest.Run(t, func(t *testing.T) evolvetest.Opener {
		dsn := pgtest.New(t)
		return func(t *testing.T, log *slog.Logger) (core.Store, *bun.DB) {
			s, err := postgres.Open(t.Context(), dsn, &postgres.Options{Logger: log})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			return s, s.DB()
		}
	})
}
