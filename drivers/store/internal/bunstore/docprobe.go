package bunstore

import (
	"context"
	"fmt"

	"github.com/offsync/offsync/core"
)

// HasDocuments reports whether offsync_documents holds a row of kind,
// tombstones included, whether or not kind is registered. An authority
// serving dynamic kinds asks it before registering a kind on a read, so that
// reads never create kinds (server.Service finds it by type assertion).
func (t *Tx) HasDocuments(ctx context.Context, kind string) (bool, error) {
	if kind == "" {
		return false, fmt.Errorf("%w: empty kind", core.ErrInvalid)
	}
	var n []int
	if err := t.tx.NewRaw("SELECT 1 FROM offsync_documents WHERE kind = ? LIMIT 1", kind).Scan(ctx, &n); err != nil {
		return false, t.dbErr("probe kind", err)
	}
	return len(n) > 0, nil
}
