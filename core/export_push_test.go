package core

import "context"

// SendOps pushes ops as one batch and applies the answers, as a push does,
// for tests that need a batch our heads would not make.
func SendOps(ctx context.Context, e *Engine, ops []Op) (Stats, error) {
	var st Stats
	_, err := e.send(ctx, ops, false, &st)
	return st, err
}
