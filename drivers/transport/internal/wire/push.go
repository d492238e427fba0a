package wire

import (
	"time"

	"github.com/offsync/offsync/core"
)

// FinishPush is how every client ends a Push that failed part-way with err
// (retry after after): when no op was answered, the push itself failed and
// returns err (the engine re-sends every op with the same op IDs); otherwise
// the ops left unanswered (Status 0) are StatusRetry, so that the answered
// ones are kept.
func FinishPush(ops []core.Op, results []core.PushResult, err error, after time.Duration) ([]core.PushResult, error) {
	if err == nil {
		return results, nil
	}
	answered := false
	for i := range results {
		if results[i].Status != 0 {
			answered = true
			break
		}
	}
	if !answered {
		return nil, err
	}
	for i := range results {
		if results[i].Status == 0 {
			results[i] = core.PushResult{OpID: ops[i].OpID, Status: core.StatusRetry,
				Reason: err.Error(), RetryAfter: after}
		}
	}
	return results, nil
}
