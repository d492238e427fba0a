package plugins_test

import (
	"testing"

	"github.com/offsync/offsync/conformance/resolvertest"
	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/plugins"
)

// harness hands every test of the suite the same plugin process, started
// once per binary (starting one per test would only cost time).
type harness struct{ p *plugins.Plugin }

func (h harness) NewResolver(*testing.T) core.Resolver { return h.p }

func (harness) Features() resolvertest.Features {
	return resolvertest.Features{Batch: true, Cancellable: true}
}

// The plugin-backed resolver runs the resolver conformance suite: the
// inventory plugin (a native BatchResolver) and the test plugin (a plain
// Resolver that Serve loops over, with a batch limit of 3).
func TestConformance(t *testing.T) {
	t.Run("inventory", func(t *testing.T) { resolvertest.Run(t, harness{load(t, inventoryBin, nil)}) })
	t.Run("testplugin", func(t *testing.T) { resolvertest.Run(t, harness{load(t, testpluginBin, nil)}) })
}
