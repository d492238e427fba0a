package websocket

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
)

// Subprotocol is the WebSocket subprotocol of offsync's frames.
const Subprotocol = "offsync.v1"

// protocolVersion is the hello frame's "protocol".
const protocolVersion = 1

// Close codes of the protocol beyond RFC 6455's.
const (
	// CloseUnauthorized closes a socket whose token was refused or expired,
	// or that did not authenticate within the deadline.
	CloseUnauthorized = 4001
)

// The frame types ("t").
const (
	tHello   = "hello"
	tAuth    = "auth"
	tPull    = "pull"
	tPush    = "push"
	tGet     = "get"
	tSub     = "sub"
	tUnsub   = "unsub"
	tPing    = "ping"
	tPong    = "pong"
	tOK      = "ok"
	tPage    = "page"
	tResults = "results"
	tRecord  = "record"
	tNotice  = "notice"
	tError   = "error"
)

// wireCursor is a pull's "after".
type wireCursor struct {
	UpdatedAt string `json:"updated_at"`
	ID        string `json:"id,omitempty"`
}

// wireOp is one op of a push, with POST /batch's field names.
type wireOp struct {
	OpID          string          `json:"opId"`
	Kind          string          `json:"kind"`
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	BaseUpdatedAt string          `json:"baseUpdatedAt,omitempty"`
	EditedAt      string          `json:"editedAt,omitempty"`
	Force         bool            `json:"force,omitempty"`
}

// wireResult is one op's answer, with POST /batch's field names and status
// numbers.
type wireResult struct {
	OpID       string          `json:"opId"`
	Status     int             `json:"status"`
	Record     json.RawMessage `json:"record,omitempty"`
	Current    json.RawMessage `json:"current,omitempty"`
	Error      string          `json:"error,omitempty"`
	Message    string          `json:"message,omitempty"`
	RetryAfter float64         `json:"retryAfter,omitempty"`
	Permanent  *bool           `json:"permanent,omitempty"`
}

// clientFrame is every frame a client sends; each type uses some members.
// ID is a pointer so that a missing id is told from id 0.
type clientFrame struct {
	T         string      `json:"t"`
	ID        *int64      `json:"id"`
	Kind      string      `json:"kind,omitempty"`
	After     *wireCursor `json:"after,omitempty"`
	PageToken string      `json:"pageToken,omitempty"`
	Limit     *int        `json:"limit,omitempty"`
	Ops       []wireOp    `json:"ops,omitempty"`
	RID       string      `json:"rid,omitempty"`
	Kinds     []string    `json:"kinds,omitempty"`
	Sub       int64       `json:"sub,omitempty"`
	Token     string      `json:"token,omitempty"`
}

// serverFrame is every frame the server sends.
type serverFrame struct {
	T  string `json:"t"`
	ID int64  `json:"id,omitempty"`

	// hello
	Protocol    int   `json:"protocol,omitempty"`
	MaxBatch    int   `json:"maxBatch,omitempty"`
	MaxLimit    int   `json:"maxLimit,omitempty"`
	MaxMessage  int64 `json:"maxMessage,omitempty"`
	MaxInFlight int   `json:"maxInFlight,omitempty"`
	Heartbeat   int64 `json:"heartbeat,omitempty"` // milliseconds
	Auth        bool  `json:"auth,omitempty"`      // hello: an auth frame is expected before requests

	// page
	Items         []json.RawMessage `json:"items,omitempty"`
	NextPageToken *string           `json:"nextPageToken,omitempty"`
	Remaining     *int64            `json:"remaining,omitempty"`

	// results
	Results []wireResult `json:"results,omitempty"`

	// record
	Record json.RawMessage `json:"record,omitempty"`

	// notice (its "id" is the record's, in RID; see noticeFrame)

	// error
	Status     int     `json:"status,omitempty"`
	Error      string  `json:"error,omitempty"`
	Message    string  `json:"message,omitempty"`
	RetryAfter float64 `json:"retryAfter,omitempty"`
}

// noticeFrame is a notice: "kind has changes up to (updated_at, id)" for
// subscription sub; gap means notices may have been lost.
type noticeFrame struct {
	T         string `json:"t"`
	Sub       int64  `json:"sub"`
	Kind      string `json:"kind,omitempty"`
	UpdatedAt string `json:"updated_at,omitempty"`
	ID        string `json:"id,omitempty"`
	Gap       bool   `json:"gap,omitempty"`
}

// inFrame is what a client reads: the union of serverFrame and noticeFrame
// (a notice's "id" is a record id, a string; an answer's is a number).
type inFrame struct {
	T             string            `json:"t"`
	ID            json.RawMessage   `json:"id"`
	Protocol      int               `json:"protocol"`
	MaxBatch      int               `json:"maxBatch"`
	MaxLimit      int               `json:"maxLimit"`
	MaxMessage    int64             `json:"maxMessage"`
	MaxInFlight   int               `json:"maxInFlight"`
	Heartbeat     int64             `json:"heartbeat"`
	Auth          bool              `json:"auth"`
	Items         []json.RawMessage `json:"items"`
	NextPageToken *string           `json:"nextPageToken"`
	Remaining     *int64            `json:"remaining"`
	Results       []wireResult      `json:"results"`
	Record        json.RawMessage   `json:"record"`
	Sub           int64             `json:"sub"`
	Kind          string            `json:"kind"`
	UpdatedAt     string            `json:"updated_at"`
	Gap           bool              `json:"gap"`
	Status        int               `json:"status"`
	Error         string            `json:"error"`
	Message       string            `json:"message"`
	RetryAfter    float64           `json:"retryAfter"`
}

// errorFrame is the answer to request id that failed as a whole, with the
// status number and code of the wire table.
func errorFrame(id int64, err error) serverFrame {
	status, code := wire.ErrorStatus(err)
	msg := err.Error()
	if status == 500 {
		msg = "internal error"
	}
	return serverFrame{T: tError, ID: id, Status: status, Error: code, Message: msg}
}

// encodeRecord renders r in its flat wire form, as REST does: id,
// updated_at, deleted_at, edited_at (when set), then the business fields.
// The system members are marshalled by encoding/json and the business
// fields spliced in from Data, which the authority keeps as a JSON object.
func encodeRecord(r *core.Record) (json.RawMessage, error) {
	sys := struct {
		ID        string  `json:"id"`
		UpdatedAt *string `json:"updated_at"`
		DeletedAt *string `json:"deleted_at"`
		EditedAt  *string `json:"edited_at,omitempty"`
	}{ID: r.ID}
	ts := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		s := core.FormatTime(t)
		return &s
	}
	sys.UpdatedAt, sys.DeletedAt, sys.EditedAt = ts(r.UpdatedAt), ts(r.DeletedAt), ts(r.EditedAt)
	b, err := json.Marshal(sys)
	if err != nil {
		return nil, err
	}
	data := bytes.TrimSpace(r.Data)
	if len(data) == 0 || string(data) == "null" {
		return b, nil
	}
	if data[0] != '{' || data[len(data)-1] != '}' {
		return nil, fmt.Errorf("%w: record %s/%s: data is not a JSON object", core.ErrInvalid, r.Kind, r.ID)
	}
	inner := bytes.TrimSpace(data[1 : len(data)-1])
	if len(inner) == 0 {
		return b, nil
	}
	out := make([]byte, 0, len(b)+len(inner)+1)
	out = append(out, b[:len(b)-1]...)
	out = append(out, ',')
	out = append(out, inner...)
	return append(out, '}'), nil
}

// systemKeys are the members of a flat record that are not business fields.
var systemKeys = []string{"id", "updated_at", "updatedAt", "deleted_at", "deletedAt", "edited_at", "editedAt"}

// decodeRecord reads a flat record object of kind with encoding/json: the
// system fields are taken out, the rest is Data.
func decodeRecord(kind string, b []byte) (core.Record, error) {
	r := core.Record{Kind: kind}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return r, fmt.Errorf("%w: a record must be a JSON object", core.ErrInvalid)
	}
	idRaw, ok := m["id"]
	if !ok || json.Unmarshal(idRaw, &r.ID) != nil || r.ID == "" {
		return r, fmt.Errorf("%w: a record needs a string id", core.ErrInvalid)
	}
	times := []struct {
		names [2]string
		dst   *time.Time
	}{
		{[2]string{"updated_at", "updatedAt"}, &r.UpdatedAt},
		{[2]string{"deleted_at", "deletedAt"}, &r.DeletedAt},
		{[2]string{"edited_at", "editedAt"}, &r.EditedAt},
	}
	for _, f := range times {
		for _, name := range f.names {
			raw, ok := m[name]
			if !ok {
				continue
			}
			var ts core.Timestamp
			if err := json.Unmarshal(raw, &ts); err != nil {
				return r, fmt.Errorf("record %s/%s %s: %w", kind, r.ID, name, err)
			}
			if !ts.IsZero() {
				*f.dst = ts.Time
			}
		}
	}
	if r.UpdatedAt.IsZero() {
		return r, fmt.Errorf("%w: record %s/%s without updated_at", core.ErrInvalid, kind, r.ID)
	}
	for _, k := range systemKeys {
		delete(m, k)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return r, fmt.Errorf("%w: record %s/%s: %v", core.ErrInvalid, kind, r.ID, err)
	}
	r.Data = data
	return r, nil
}

// encodeOp renders op in POST /batch's form.
func encodeOp(op *core.Op) wireOp {
	w := wireOp{OpID: op.OpID, Kind: op.Kind, ID: op.ID, Type: string(op.Type), Force: op.Force,
		BaseUpdatedAt: core.FormatTime(op.BaseUpdatedAt), EditedAt: core.FormatTime(op.EditedAt)}
	if op.Type == core.OpUpsert {
		w.Payload = op.Payload
		if len(bytes.TrimSpace(w.Payload)) == 0 || string(bytes.TrimSpace(w.Payload)) == "null" {
			w.Payload = json.RawMessage("{}")
		}
	}
	return w
}

// maxOpID bounds an op id, as REST's idempotency key.
const maxOpID = 255

// decodeOps checks the ops of a push frame as POST /batch does: every
// error wraps core.ErrInvalid (400) or core.ErrTooLarge (413, more than
// maxOps ops), and nothing is written for a bad push.
func decodeOps(in []wireOp, maxOps int) ([]core.Op, error) {
	if maxOps > 0 && len(in) > maxOps {
		return nil, fmt.Errorf("%w: %d ops in one push, at most %d", core.ErrTooLarge, len(in), maxOps)
	}
	ops := make([]core.Op, len(in))
	seen := make(map[string]struct{}, len(in))
	for n := range in {
		w := &in[n]
		where := fmt.Sprintf("ops[%d]", n)
		if w.OpID == "" || len(w.OpID) > maxOpID || strings.IndexFunc(w.OpID, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
			return nil, fmt.Errorf("%w: %s.opId: an op id must have 1 to 255 printable ASCII bytes without spaces", core.ErrInvalid, where)
		}
		if _, dup := seen[w.OpID]; dup {
			return nil, fmt.Errorf("%w: %s: opId %q appears twice", core.ErrInvalid, where, w.OpID)
		}
		seen[w.OpID] = struct{}{}
		if w.Kind == "" || core.ReservedKind(w.Kind) {
			return nil, fmt.Errorf("%w: %s: kind %q", core.ErrInvalid, where, w.Kind)
		}
		if w.ID == "" {
			return nil, fmt.Errorf("%w: %s: empty id", core.ErrInvalid, where)
		}
		op := core.Op{OpID: w.OpID, Kind: w.Kind, ID: w.ID, Force: w.Force}
		var err error
		if w.BaseUpdatedAt != "" {
			if op.BaseUpdatedAt, err = core.ParseTime(w.BaseUpdatedAt); err != nil {
				return nil, fmt.Errorf("%s.baseUpdatedAt: %w", where, err)
			}
		}
		if w.EditedAt != "" {
			if op.EditedAt, err = core.ParseTime(w.EditedAt); err != nil {
				return nil, fmt.Errorf("%s.editedAt: %w", where, err)
			}
		}
		payload := bytes.TrimSpace(w.Payload)
		switch core.OpType(w.Type) {
		case core.OpUpsert:
			op.Type = core.OpUpsert
			if len(payload) == 0 || payload[0] != '{' {
				return nil, fmt.Errorf("%w: %s: an upsert needs a payload object", core.ErrInvalid, where)
			}
			op.Payload = append(json.RawMessage(nil), payload...)
		case core.OpDelete:
			op.Type = core.OpDelete
			if len(payload) > 0 && string(payload) != "null" {
				return nil, fmt.Errorf("%w: %s: a delete carries no payload", core.ErrInvalid, where)
			}
		default:
			return nil, fmt.Errorf("%w: %s: type must be \"upsert\" or \"delete\", got %q", core.ErrInvalid, where, w.Type)
		}
		ops[n] = op
	}
	return ops, nil
}

// encodeResult renders one op's answer in POST /batch's form.
func encodeResult(op *core.Op, pr *core.PushResult) (wireResult, error) {
	w := wireResult{OpID: op.OpID, Status: wire.ResultStatus(pr.Status), Error: wire.ResultCode(pr.Status)}
	var err error
	switch pr.Status {
	case core.StatusApplied:
		if pr.Record == nil {
			return w, errors.New("websocket: the authority applied an op without a record")
		}
		w.Record, err = encodeRecord(pr.Record)
	case core.StatusConflict:
		if pr.Record != nil {
			w.Current, err = encodeRecord(pr.Record)
		}
	case core.StatusRejected:
		w.Message = pr.Reason
		if !pr.Permanent {
			f := false
			w.Permanent = &f
		}
	case core.StatusRetry:
		w.Message = pr.Reason
		w.RetryAfter = pr.RetryAfter.Seconds()
	}
	return w, err
}
