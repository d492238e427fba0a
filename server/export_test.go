package server

import (
	"context"
	"time"
)

// SetAfterStamp installs a hook that runs right after an op's version is
// stamped: inside the write transaction with the kind's lock held (locked
// true), or, in the stamp-before-lock variant, before the transaction
// (locked false). Tests use it to hold a stamped writer open.
func SetAfterStamp(s *Service, f func(ctx context.Context, kind, id string, version time.Time, locked bool)) {
	s.afterStamp = f
}

// UseStampBeforeLock switches s to the broken variant that reads the clock
// before the transaction and its lock; it exists only as a negative control.
func UseStampBeforeLock(s *Service) { s.stampBeforeLock = true }
