package server

import (
	"context"
	"fmt"

	"github.com/offsync/offsync/core"
)

// pastHorizon reports whether a pull from pos may have missed a collected
// tombstone, pos being the request's cursor or its page token's position
// (fromStart: the token's walk began at the start of the feed). Pull calls
// it after reading the page, in the same transaction, so a collection
// committed between the two is seen here even where each statement reads
// its own snapshot (Postgres at READ COMMITTED).
//
//   - A walk from the start (a zero cursor, or a page token of such a
//     walk) is never past it, and costs no read: a replica that pulls a
//     kind from the start holds no rows of it but those it removes, when
//     the walk ends, if the walk did not bring them.
//   - Any other position older than the kind's horizon is past it: a
//     cursor, because tombstones newer than it were collected; a page
//     token, because a collection since it was issued overtook the walk
//     (the walk's start was at or after the horizon then, and every page
//     since was checked), removing tombstones before the walk reached
//     them.
func pastHorizon(ctx context.Context, tx core.Tx, kind string, pos core.Cursor, fromStart bool) (bool, error) {
	if fromStart {
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
	return !h.IsZero() && core.Micro(pos.UpdatedAt).Before(h), nil
}

// resetErr is the error of a pull past the horizon.
func resetErr(kind string, pos core.Cursor, token bool) error {
	what := "after " + core.FormatTime(pos.UpdatedAt)
	if token {
		what = "with a page token at " + core.FormatTime(pos.UpdatedAt)
	}
	return fmt.Errorf("server: pull %q %s: tombstones newer than that position were collected, pull the kind from the start: %w",
		kind, what, core.ErrResetRequired)
}
