package postgres_test

import (
	"testing"

	"github.com/offsync/offsync/conformance/storetest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/postgres"
	"github.com/offsync/offsync/internal/pgtest"
)

// harness gives every conformance test a store on a fresh database of the
// test binary's shared cluster.
type harness struct{}

func (harness) NewStore(t *testing.T) core.Store {
	s, err := postgres.Open(t.Context(), pgtest.New(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, harness{}) }
