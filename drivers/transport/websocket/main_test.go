package websocket_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a goroutine outlives the tests: every
// client and server half must end what it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
