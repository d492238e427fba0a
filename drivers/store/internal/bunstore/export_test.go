package bunstore

import "github.com/offsync/offsync/core"

// OpsQuery exposes the query of Ops for f, for the plan tests.
func (s *Store) OpsQuery(f core.OpFilter) (string, []any) { return s.opsQuery(f) }
