package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/internal/jsonscan"
)

// failure is a push that reached no verdict: every op from here on is
// answered StatusRetry (or Push fails when nothing was answered).
type failure struct {
	err   error
	after time.Duration
}

type recKey struct{ kind, id string }

// answer is one op's verdict as the wire gives it, per op or in a batch.
type answer struct {
	status     int
	record     json.RawMessage // 200/201
	current    json.RawMessage // 409
	code       string
	message    string
	retryAfter time.Duration
	permanent  *bool
}

func (a *answer) reason() string {
	switch {
	case a.code != "" && a.message != "":
		return a.code + ": " + a.message
	case a.message != "":
		return a.message
	case a.code != "":
		return a.code
	}
	return fmt.Sprintf("HTTP %d %s", a.status, http.StatusText(a.status))
}

// verdict maps an answer to a PushResult, or to a failure for the answers
// that say "try later" (auth, rate limits, 5xx).
func verdict(op *core.Op, a *answer) (core.PushResult, *failure) {
	res := core.PushResult{OpID: op.OpID}
	what := fmt.Sprintf("rest: push %s %s/%s", op.Type, op.Kind, op.ID)
	status, permanent, ok := wire.ResultOf(a.status, a.code)
	if !ok { // about the call, not the op: auth, rate limits, 5xx
		return res, &failure{err: fmt.Errorf("%s: %w (%s)", what, wire.ErrorOf(a.status, a.code), a.reason()), after: a.retryAfter}
	}
	res.Status = status
	switch status {
	case core.StatusApplied:
		if len(a.record) == 0 || isNull(a.record) {
			return res, &failure{err: fmt.Errorf("%s: %w: applied without the stored record", what, core.ErrUnavailable)}
		}
		var arena []byte
		rec, err := decodeRecord(op.Kind, a.record, &arena)
		if err != nil {
			return res, &failure{err: fmt.Errorf("%s: %w: unreadable answer: %v", what, core.ErrUnavailable, err)}
		}
		res.Record = &rec
	case core.StatusConflict:
		if len(a.current) > 0 && !isNull(a.current) {
			var arena []byte
			rec, err := decodeRecord(op.Kind, a.current, &arena)
			if err != nil {
				return res, &failure{err: fmt.Errorf("%s: %w: unreadable conflict: %v", what, core.ErrUnavailable, err)}
			}
			res.Record = &rec
		}
	case core.StatusSkipped:
		res.Reason = a.reason()
	case core.StatusRejected:
		res.Reason, res.Permanent = a.reason(), permanent
		if a.status == http.StatusUnprocessableEntity && a.permanent != nil {
			res.Permanent = *a.permanent
		}
	}
	return res, nil
}

// checkPayload refuses an op that cannot be sent: a locally bad op is a
// failure of the op itself, answered without a round trip.
func checkPayload(op *core.Op) (core.PushResult, bool) {
	switch op.Type {
	case core.OpDelete:
		return core.PushResult{}, true
	case core.OpUpsert:
		if len(op.Payload) == 0 || isNull(op.Payload) {
			return core.PushResult{}, true
		}
		if jsonscan.Valid(op.Payload) {
			if i := skipWS(op.Payload, 0); op.Payload[i] == '{' {
				return core.PushResult{}, true
			}
		}
		return core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Permanent: true,
			Reason: "payload is not a JSON object"}, false
	}
	return core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Permanent: true,
		Reason: fmt.Sprintf("unknown op type %q", op.Type)}, false
}

// Push implements core.Transport. It uses POST /batch when /health lists
// "batch" (split by maxBatch) and one request per op otherwise. Once an op
// for a record is not applied, the later ops for that record are answered
// Skipped. A failure that is not an op's own (network, 401, 403, 429, 5xx)
// answers the remaining ops StatusRetry, or fails Push when no op was
// answered.
func (c *Client) Push(ctx context.Context, ops []core.Op) ([]core.PushResult, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	h, err := c.probe(ctx)
	if err != nil {
		return nil, err
	}
	results := make([]core.PushResult, len(ops))
	blocked := map[recKey]struct{}{}
	var f *failure
	if h.batch {
		f = c.pushBatches(ctx, ops, h.maxBatch, results, blocked)
	} else {
		idx := make([]int, len(ops))
		for i := range idx {
			idx[i] = i
		}
		f = c.pushEach(ctx, ops, idx, results, blocked)
	}
	if f == nil {
		return results, nil
	}
	return wire.FinishPush(ops, results, f.err, f.after)
}

// settle records res for ops[i] and blocks the record when it was not applied.
func settle(ops []core.Op, i int, res core.PushResult, results []core.PushResult, blocked map[recKey]struct{}) {
	results[i] = res
	if res.Status != core.StatusApplied {
		blocked[recKey{ops[i].Kind, ops[i].ID}] = struct{}{}
	}
}

// pushEach sends ops[idx...] one request at a time, in order.
func (c *Client) pushEach(ctx context.Context, ops []core.Op, idx []int, results []core.PushResult, blocked map[recKey]struct{}) *failure {
	for _, i := range idx {
		op := &ops[i]
		if _, ok := blocked[recKey{op.Kind, op.ID}]; ok {
			results[i] = core.PushResult{OpID: op.OpID, Status: core.StatusSkipped, Reason: "skipped"}
			continue
		}
		if res, ok := checkPayload(op); !ok {
			settle(ops, i, res, results, blocked)
			continue
		}
		res, f := c.pushOne(ctx, op)
		if f != nil {
			return f
		}
		settle(ops, i, res, results, blocked)
	}
	return nil
}

// pushOne sends one op in the per-op form (PUT/DELETE).
func (c *Client) pushOne(ctx context.Context, op *core.Op) (core.PushResult, *failure) {
	hdr := map[string]string{"X-Idempotency-Key": op.OpID}
	var method, target string
	var body []byte
	if op.Type == core.OpDelete {
		method = http.MethodDelete
		var q url.Values
		if !op.BaseUpdatedAt.IsZero() {
			q = url.Values{"_baseUpdatedAt": {core.FormatTime(op.BaseUpdatedAt)}}
		}
		target = c.url(recordPath(op.Kind, op.ID), q)
		if op.Force {
			hdr["X-Force-Delete"] = "true"
		}
	} else {
		method = http.MethodPut
		target = c.url(recordPath(op.Kind, op.ID), nil)
		var err error
		if body, err = appendPutBody(make([]byte, 0, len(op.Payload)+96), op); err != nil {
			return core.PushResult{OpID: op.OpID, Status: core.StatusRejected, Permanent: true, Reason: err.Error()}, nil
		}
		if op.Force {
			hdr["X-Force-Update"] = "true"
		}
	}
	r, err := c.do(ctx, method, target, body, hdr)
	if err != nil {
		return core.PushResult{}, &failure{err: err}
	}
	a := answer{status: r.status, retryAfter: retryAfter(r.header)}
	switch {
	case r.status == http.StatusOK || r.status == http.StatusCreated:
		a.record = r.body
		if !jsonscan.Valid(a.record) {
			a.record = nil
		}
	default:
		if jsonscan.Valid(r.body) {
			var eb struct {
				Error     string          `json:"error"`
				Message   string          `json:"message"`
				Current   json.RawMessage `json:"current"`
				Permanent *bool           `json:"permanent"`
			}
			if json.Unmarshal(r.body, &eb) == nil {
				a.code, a.message, a.current, a.permanent = eb.Error, eb.Message, eb.Current, eb.Permanent
			}
			// A per-op backend may answer a 409 with the current record itself.
			if r.status == http.StatusConflict && len(a.current) == 0 {
				var probe struct {
					ID json.RawMessage `json:"id"`
				}
				if json.Unmarshal(r.body, &probe) == nil && len(probe.ID) > 0 {
					a.current = r.body
				}
			}
		} else if len(r.body) > 0 {
			a.message = r.describe()
		}
	}
	return verdict(op, &a)
}

// batchResult is one entry of a /batch answer.
type batchResult struct {
	OpID       string          `json:"opId"`
	Status     int             `json:"status"`
	Record     json.RawMessage `json:"record"`
	Current    json.RawMessage `json:"current"`
	Error      string          `json:"error"`
	Message    string          `json:"message"`
	RetryAfter float64         `json:"retryAfter"`
	Permanent  *bool           `json:"permanent"`
}

// appendBatchOp appends one op of a /batch body.
func appendBatchOp(b []byte, op *core.Op) []byte {
	b = append(b, `{"opId":`...)
	b = appendJSONString(b, op.OpID)
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, op.Kind)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, op.ID)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, string(op.Type))
	if op.Type == core.OpUpsert {
		b = append(b, `,"payload":`...)
		if len(op.Payload) == 0 || isNull(op.Payload) {
			b = append(b, "{}"...)
		} else {
			b = append(b, op.Payload...)
		}
	}
	if !op.BaseUpdatedAt.IsZero() {
		b = append(b, `,"baseUpdatedAt":`...)
		b = appendTime(b, op.BaseUpdatedAt)
	}
	if !op.EditedAt.IsZero() {
		b = append(b, `,"editedAt":`...)
		b = appendTime(b, op.EditedAt)
	}
	if op.Force {
		b = append(b, `,"force":true`...)
	}
	return append(b, '}')
}

// pushBatches sends ops in POST /batch requests of at most max ops.
func (c *Client) pushBatches(ctx context.Context, ops []core.Op, max int, results []core.PushResult, blocked map[recKey]struct{}) *failure {
	idx := make([]int, 0, min(max, len(ops)))
	for start := 0; start < len(ops); {
		idx = idx[:0]
		i := start
		for ; i < len(ops) && len(idx) < max; i++ {
			op := &ops[i]
			if _, ok := blocked[recKey{op.Kind, op.ID}]; ok {
				results[i] = core.PushResult{OpID: op.OpID, Status: core.StatusSkipped, Reason: "skipped"}
				continue
			}
			if res, ok := checkPayload(op); !ok {
				settle(ops, i, res, results, blocked)
				continue
			}
			idx = append(idx, i)
		}
		start = i
		if len(idx) == 0 {
			continue
		}
		if f := c.pushBatch(ctx, ops, idx, results, blocked); f != nil {
			return f
		}
	}
	return nil
}

var errFallback = errors.New("batch refused as a whole")

// pushBatch sends one POST /batch. A batch refused as a whole (400, 404,
// 405, 413) is re-sent op by op, so the op at fault is found and the others
// go through.
func (c *Client) pushBatch(ctx context.Context, ops []core.Op, idx []int, results []core.PushResult, blocked map[recKey]struct{}) *failure {
	size := 16
	for _, i := range idx {
		size += len(ops[i].Payload) + len(ops[i].ID) + len(ops[i].Kind) + 160
	}
	body := make([]byte, 0, size)
	body = append(body, `{"ops":[`...)
	for n, i := range idx {
		if n > 0 {
			body = append(body, ',')
		}
		body = appendBatchOp(body, &ops[i])
	}
	body = append(body, "]}"...)
	r, err := c.do(ctx, http.MethodPost, c.url("/batch", nil), body, nil)
	if err != nil {
		return &failure{err: err}
	}
	switch r.status {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
		c.log.WarnContext(ctx, "rest: /batch refused the batch; sending op by op", "err", errFallback, "answer", r.describe())
		return c.pushEach(ctx, ops, idx, results, blocked)
	default:
		a := answer{status: r.status, retryAfter: retryAfter(r.header)}
		e := r.errInfo()
		a.code, a.message = e.Error, e.Message
		if a.status < 400 || a.status == http.StatusUnauthorized || a.status == http.StatusForbidden ||
			a.status == http.StatusTooManyRequests || a.status >= 500 {
			_, f := verdict(&ops[idx[0]], &a)
			return f
		}
		return &failure{err: statusErr("push batch", r), after: a.retryAfter}
	}
	var rb struct {
		Results []batchResult `json:"results"`
	}
	if err := json.Unmarshal(r.body, &rb); err != nil {
		return &failure{err: fmt.Errorf("rest: push batch: %w: unreadable answer: %v", core.ErrUnavailable, err)}
	}
	for n, i := range idx {
		op := &ops[i]
		if n >= len(rb.Results) || rb.Results[n].OpID != op.OpID {
			// The answer left this op out: it is unknown whether it was
			// processed; the engine re-sends it with the same opId.
			results[i] = core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: "missing from the batch answer"}
			blocked[recKey{op.Kind, op.ID}] = struct{}{}
			continue
		}
		br := &rb.Results[n]
		a := answer{status: br.Status, record: br.Record, current: br.Current, code: br.Error,
			message: br.Message, permanent: br.Permanent,
			retryAfter: time.Duration(br.RetryAfter * float64(time.Second))}
		res, f := verdict(op, &a)
		if f != nil {
			res = core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: f.err.Error(), RetryAfter: f.after}
		}
		settle(ops, i, res, results, blocked)
	}
	return nil
}
