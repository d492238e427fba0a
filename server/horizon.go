package server

import (
	"context"
	"fmt"

	"github.com/offsync/offsync/core"
)

// pastHorizon reports whether a pull may have missed a collected
// tombstone: it resumes from a cursor older than the kind's horizon. A zero
// cursor is never past it (a walk from the start misses nothing that
// matters: a collected tombstone's row is gone). A page token continues a
// walk whose start was checked: its position is older than the horizon
// whenever the walk began at the start of a long-lived kind, so checking it
// would reset every full walk. Pull calls it after reading the page in the
// same transaction, so a collection committed between the two is seen here
// even where each statement reads its own snapshot (Postgres at READ
// COMMITTED).
func pastHorizon(ctx context.Context, tx core.Tx, kind string, req core.PullRequest) (bool, error) {
	if req.PageToken != "" || req.After.IsZero() {
		return false, nil
	}
	tt, ok := tx.(core.TombstoneTx)
	if !ok {
		return false, nil // a store that cannot collect has no horizon
	}
	h, err := tt.Horizon(ctx, kind)
	if err != nil {
		return false, err
	}
	return !h.IsZero() && core.Micro(req.After.UpdatedAt).Before(h), nil
}

// resetErr is the error of a pull past the horizon.
func resetErr(kind string, after core.Cursor) error {
	return fmt.Errorf("server: pull %q after %s: tombstones older than the cursor were collected, pull the kind from the start: %w",
		kind, core.FormatTime(after.UpdatedAt), core.ErrResetRequired)
}
