package grpc

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/offsync/offsync/core"
	syncv1 "github.com/offsync/offsync/drivers/transport/grpc/proto/offsync/sync/v1"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/internal/jsonscan"
)

// The range of a time on the wire: the years 1 to 9999 (what RFC 3339, the
// other wire forms and every store can represent), in microseconds.
const (
	minMicros = -62135596800000000 // 0001-01-01T00:00:00Z
	maxMicros = 253402300799999999 // 9999-12-31T23:59:59.999999Z
)

// micros is t on the wire: microseconds since the epoch, 0 for the zero time.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// timeOf is a wire time as a time.Time (0 is the zero time). A time outside
// the years 1 to 9999 wraps core.ErrInvalid.
func timeOf(field string, us int64) (time.Time, error) {
	if us == 0 {
		return time.Time{}, nil
	}
	if us < minMicros || us > maxMicros {
		return time.Time{}, fmt.Errorf("%w: %s %d µs is outside the years 1 to 9999", core.ErrInvalid, field, us)
	}
	return time.UnixMicro(us).UTC(), nil
}

// recordPB is rec on the wire.
func recordPB(rec *core.Record) *syncv1.Record {
	return &syncv1.Record{Kind: rec.Kind, Id: rec.ID, UpdatedAt: micros(rec.UpdatedAt),
		DeletedAt: micros(rec.DeletedAt), EditedAt: micros(rec.EditedAt), Data: rec.Data}
}

// recordOf reads a record a server sent (the client side). kind is the
// kind asked for, used when the record leaves it out.
func recordOf(kind string, p *syncv1.Record) (core.Record, error) {
	rec := core.Record{Kind: p.GetKind(), ID: p.GetId()}
	if rec.Kind == "" {
		rec.Kind = kind
	}
	var err error
	if rec.UpdatedAt, err = timeOf("updated_at", p.GetUpdatedAt()); err != nil {
		return core.Record{}, err
	}
	if rec.UpdatedAt.IsZero() {
		return core.Record{}, fmt.Errorf("%w: record %s/%s without updated_at", core.ErrInvalid, rec.Kind, rec.ID)
	}
	if rec.DeletedAt, err = timeOf("deleted_at", p.GetDeletedAt()); err != nil {
		return core.Record{}, err
	}
	if rec.EditedAt, err = timeOf("edited_at", p.GetEditedAt()); err != nil {
		return core.Record{}, err
	}
	if rec.ID == "" {
		return core.Record{}, fmt.Errorf("%w: a record without an id", core.ErrInvalid)
	}
	if d := p.GetData(); len(d) > 0 {
		if !isObject(d) {
			return core.Record{}, fmt.Errorf("%w: record %s/%s: data is not a JSON object", core.ErrInvalid, rec.Kind, rec.ID)
		}
		rec.Data = json.RawMessage(d)
	}
	return rec, nil
}

// isObject reports whether b is valid JSON whose value is an object.
func isObject(b []byte) bool { return jsonscan.IsObject(b) }

// opPB is op on the wire.
func opPB(op *core.Op) *syncv1.Op {
	p := &syncv1.Op{OpId: op.OpID, Kind: op.Kind, Id: op.ID, BaseUpdatedAt: micros(op.BaseUpdatedAt),
		EditedAt: micros(op.EditedAt), Force: op.Force}
	switch op.Type {
	case core.OpUpsert:
		p.Type = syncv1.OpType_OP_TYPE_UPSERT
		p.Payload = op.Payload
	case core.OpDelete:
		p.Type = syncv1.OpType_OP_TYPE_DELETE
	}
	return p
}

// checkKind refuses a kind that cannot name anything: empty, too long, or
// not valid UTF-8 (the authority answers an unknown one).
func checkKind(kind string) error {
	switch {
	case kind == "":
		return fmt.Errorf("%w: empty kind", core.ErrInvalid)
	case len(kind) > core.MaxKindBytes:
		return fmt.Errorf("%w: a kind has at most %d bytes, got %d", core.ErrInvalid, core.MaxKindBytes, len(kind))
	case !utf8.ValidString(kind):
		return fmt.Errorf("%w: a kind must be valid UTF-8", core.ErrInvalid)
	}
	return nil
}

// opsOf reads the ops of a PushRequest (the server side): every error wraps
// core.ErrInvalid (400) or core.ErrTooLarge (413, more than maxOps ops), and
// names the op at fault; nothing is pushed for a bad request.
func opsOf(in []*syncv1.Op, maxOps int) ([]core.Op, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("%w: a push needs 1 to %d ops, got none", core.ErrInvalid, maxOps)
	}
	if len(in) > maxOps {
		return nil, fmt.Errorf("%w: %d ops in one push, at most %d", core.ErrTooLarge, len(in), maxOps)
	}
	ops := make([]core.Op, len(in))
	seen := make(map[string]struct{}, len(in))
	for n, p := range in {
		where := "ops[" + strconv.Itoa(n) + "]"
		if err := wire.CheckOpID(p.GetOpId()); err != nil {
			return nil, fmt.Errorf("%s.op_id: %w", where, err)
		}
		if _, dup := seen[p.GetOpId()]; dup {
			return nil, fmt.Errorf("%w: %s.op_id %q appears twice", core.ErrInvalid, where, p.GetOpId())
		}
		seen[p.GetOpId()] = struct{}{}
		if err := checkKind(p.GetKind()); err != nil {
			return nil, fmt.Errorf("%s.kind: %w", where, err)
		}
		if err := core.CheckID(p.GetId()); err != nil {
			return nil, fmt.Errorf("%s.id: %w", where, err)
		}
		op := core.Op{OpID: p.GetOpId(), Kind: p.GetKind(), ID: p.GetId(), Force: p.GetForce()}
		var err error
		if op.BaseUpdatedAt, err = timeOf(where+".base_updated_at", p.GetBaseUpdatedAt()); err != nil {
			return nil, err
		}
		if op.EditedAt, err = timeOf(where+".edited_at", p.GetEditedAt()); err != nil {
			return nil, err
		}
		switch p.GetType() {
		case syncv1.OpType_OP_TYPE_UPSERT:
			op.Type = core.OpUpsert
			if !isObject(p.GetPayload()) {
				return nil, fmt.Errorf("%w: %s.payload: data must be a JSON object", core.ErrInvalid, where)
			}
			op.Payload = json.RawMessage(p.GetPayload())
		case syncv1.OpType_OP_TYPE_DELETE:
			op.Type = core.OpDelete
			if len(p.GetPayload()) > 0 {
				return nil, fmt.Errorf("%w: %s: a delete carries no payload", core.ErrInvalid, where)
			}
		default:
			return nil, fmt.Errorf("%w: %s.type must be OP_TYPE_UPSERT or OP_TYPE_DELETE, got %v", core.ErrInvalid, where, p.GetType())
		}
		ops[n] = op
	}
	return ops, nil
}

// pullOf reads a PullRequest (the server side); errors wrap core.ErrInvalid.
// A page token takes the place of after.
func pullOf(p *syncv1.PullRequest) (core.PullRequest, error) {
	req := core.PullRequest{Kind: p.GetKind(), PageToken: p.GetPageToken(), Limit: int(p.GetLimit())}
	if err := checkKind(req.Kind); err != nil {
		return req, fmt.Errorf("kind: %w", err)
	}
	if req.Limit < 0 {
		return req, fmt.Errorf("%w: limit must not be negative, got %d", core.ErrInvalid, req.Limit)
	}
	if a := p.GetAfter(); a != nil {
		t, err := timeOf("after.updated_at", a.GetUpdatedAt())
		if err != nil {
			return req, err
		}
		if a.GetId() != "" {
			if t.IsZero() {
				return req, fmt.Errorf("%w: after.id needs after.updated_at", core.ErrInvalid)
			}
			if err := core.CheckID(a.GetId()); err != nil {
				return req, fmt.Errorf("after.id: %w", err)
			}
		}
		if req.PageToken == "" {
			req.After = core.Cursor{UpdatedAt: t, ID: a.GetId()}
		}
	}
	return req, nil
}

// resultPB is a push result on the wire.
func resultPB(r *core.PushResult) *syncv1.PushResult {
	p := &syncv1.PushResult{OpId: r.OpID, Status: int32(wire.ResultStatus(r.Status)),
		Error: wire.ResultCode(r.Status), Message: r.Reason}
	switch r.Status {
	case core.StatusApplied:
		p.Message = ""
		if r.Record != nil {
			p.Record = recordPB(r.Record)
		}
	case core.StatusConflict:
		if r.Record != nil {
			p.Current = recordPB(r.Record)
		}
	case core.StatusRejected:
		if !r.Permanent {
			f := false
			p.Permanent = &f
		}
	case core.StatusRetry:
		p.RetryAfterMs = r.RetryAfter.Milliseconds()
	}
	return p
}

// resultOf reads one op's result a server sent (the client side). ok is
// false for an answer about the call rather than the op (401, 403, 429,
// 5xx), and for an answer the client cannot read: the op was not
// processed, retry later.
func resultOf(op *core.Op, p *syncv1.PushResult) (res core.PushResult, ok bool) {
	res = core.PushResult{OpID: op.OpID}
	s, permanent, known := wire.ResultOf(int(p.GetStatus()), p.GetError())
	reason := p.GetMessage()
	if reason == "" {
		reason = p.GetError()
	}
	if !known {
		res.Status, res.Reason = core.StatusRetry, fmt.Sprintf("%d %s", p.GetStatus(), reason)
		res.RetryAfter = time.Duration(p.GetRetryAfterMs()) * time.Millisecond
		return res, false
	}
	res.Status, res.Permanent = s, permanent
	switch s {
	case core.StatusApplied:
		if p.GetRecord() == nil {
			return core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: "applied without the stored record"}, false
		}
		rec, err := recordOf(op.Kind, p.GetRecord())
		if err != nil {
			return core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: "unreadable record: " + err.Error()}, false
		}
		res.Record = &rec
	case core.StatusConflict:
		if p.GetCurrent() != nil {
			rec, err := recordOf(op.Kind, p.GetCurrent())
			if err != nil {
				return core.PushResult{OpID: op.OpID, Status: core.StatusRetry, Reason: "unreadable conflict: " + err.Error()}, false
			}
			res.Record = &rec
		}
	case core.StatusRejected, core.StatusSkipped:
		res.Reason = reason
		if p.Permanent != nil && s == core.StatusRejected && int(p.GetStatus()) == 422 {
			res.Permanent = p.GetPermanent()
		}
	case core.StatusRetry:
		res.Reason = reason
		res.RetryAfter = time.Duration(p.GetRetryAfterMs()) * time.Millisecond
	}
	return res, true
}

// noticePB is a notice on the wire.
func noticePB(n *core.Notice) *syncv1.Notice {
	return &syncv1.Notice{Kind: n.Kind, UpdatedAt: micros(n.UpdatedAt), Id: n.ID}
}
