package websocket

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
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
	tPages   = "pullPages"
	tCredit  = "credit"
	tCancel  = "cancel"
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
	// Window is a pullPages' initial grant of pages.
	Window *int `json:"window,omitempty"`
	// Stream names the pullPages request a credit or cancel is about (those
	// two frames have no id of their own); N is a credit's grant.
	Stream *int64 `json:"stream,omitempty"`
	N      *int64 `json:"n,omitempty"`
	// Traceparent is the W3C trace context of a pull, push, get or sub
	// (package tracing), when the caller has a span.
	Traceparent string `json:"traceparent,omitempty"`
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
	MaxWindow   int   `json:"maxWindow,omitempty"` // hello: pullPages is served, with at most this window
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
	// page holds a page frame as it came (see pageFrameID): its records are
	// read by decodePage, with the pull's kind, straight from these bytes.
	page []byte
	buf  *bytes.Buffer // holds page, for reuse once it is decoded

	T             string            `json:"t"`
	ID            json.RawMessage   `json:"id"`
	Protocol      int               `json:"protocol"`
	MaxBatch      int               `json:"maxBatch"`
	MaxLimit      int               `json:"maxLimit"`
	MaxMessage    int64             `json:"maxMessage"`
	MaxInFlight   int               `json:"maxInFlight"`
	Heartbeat     int64             `json:"heartbeat"`
	MaxWindow     int               `json:"maxWindow"`
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
	f := serverFrame{T: tError, ID: id, Status: status, Error: code, Message: msg}
	if status == http.StatusTooManyRequests {
		f.RetryAfter = max(server.RetryAfter(err).Seconds(), 0.001)
	}
	return f
}

// Records travel in REST's flat form: id, updated_at, deleted_at,
// edited_at (when set), then the business fields. offsync's server always
// writes the system members first, in that order, in one canonical layout
// (appendHead), so that a client can take them off the front and keep the
// business fields as they are, without decoding them: on a pull of many
// records, encoding/json's reflection over every field was most of the CPU
// (see the package benchmarks). Any other layout is decoded with
// encoding/json through a map.

// appendHead appends the system members of r, from the opening brace to
// the last one's value.
func appendHead(b []byte, r *core.Record) []byte {
	b = append(b, `{"id":`...)
	b = wire.AppendString(b, r.ID)
	b = append(b, `,"updated_at":`...)
	b = appendStamp(b, r.UpdatedAt)
	b = append(b, `,"deleted_at":`...)
	b = appendStamp(b, r.DeletedAt)
	if !r.EditedAt.IsZero() {
		b = append(b, `,"edited_at":`...)
		b = appendStamp(b, r.EditedAt)
	}
	return b
}

// appendStamp appends t in core.TimeLayout (27 bytes between quotes), or
// null for the zero time.
func appendStamp(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = core.Micro(t).AppendFormat(b, core.TimeLayout)
	return append(b, '"')
}

// appendRecord appends r in its flat wire form. Data must be a JSON object
// (the authority keeps it so); anything else is core.ErrInvalid.
func appendRecord(b []byte, r *core.Record) ([]byte, error) {
	data := bytes.TrimSpace(r.Data)
	var inner []byte
	if len(data) > 0 && string(data) != "null" {
		if data[0] != '{' || data[len(data)-1] != '}' {
			return b, fmt.Errorf("%w: record %s/%s: data is not a JSON object", core.ErrInvalid, r.Kind, r.ID)
		}
		inner = bytes.TrimSpace(data[1 : len(data)-1])
	}
	b = appendHead(b, r)
	if len(inner) > 0 {
		b = append(b, ',')
		b = append(b, inner...)
	}
	return append(b, '}'), nil
}

// encodeRecord renders r in its flat wire form.
func encodeRecord(r *core.Record) (json.RawMessage, error) {
	return appendRecord(make([]byte, 0, len(r.Data)+120), r)
}

// systemKeys are the members of a flat record that are not business fields.
var systemKeys = []string{"id", "updated_at", "updatedAt", "deleted_at", "deletedAt", "edited_at", "editedAt"}

// decodeRecord reads a flat record object of kind (valid JSON: it comes
// out of a frame encoding/json has read): the system members are taken out,
// the rest is Data. A record in appendHead's layout has its head read in
// place and its business fields kept as sent; any other goes through a map.
func decodeRecord(kind string, b []byte) (core.Record, error) {
	if r, ok := decodeHead(kind, b); ok {
		return r, nil
	}
	return decodeRecordMap(kind, b)
}

// decodeRecordIn is decodeRecord with the record's Data appended to *slab
// when it is in appendHead's layout.
func decodeRecordIn(kind string, b []byte, slab *[]byte) (core.Record, error) {
	r, grown, ok := readHead(kind, b, *slab)
	*slab = grown
	if ok {
		return r, nil
	}
	return decodeRecordMap(kind, b)
}

// decodeHead reads a record in appendHead's layout; ok is false for any
// other (then nothing is decided).
func decodeHead(kind string, b []byte) (r core.Record, ok bool) {
	r, _, ok = readHead(kind, b, nil)
	return r, ok
}

// readHead is decodeHead with the record's Data appended to slab (a page's
// records share one allocation); Data is the tail it added, capped. It
// returns slab grown.
func readHead(kind string, b, slab []byte) (r core.Record, _ []byte, ok bool) {
	const open, upd = `{"id":"`, `","updated_at":`
	r.Kind = kind
	if !bytes.HasPrefix(b, []byte(open)) {
		return r, slab, false
	}
	// In this layout the id string is followed by `","updated_at":`, a
	// sequence that cannot occur inside the string, whose quotes are all
	// escaped.
	end := bytes.Index(b[len(open):], []byte(upd))
	if end < 0 {
		return r, slab, false
	}
	end += len(open) // the id's closing quote
	quoted := b[len(open)-1 : end+1]
	if bytes.IndexByte(quoted, '\\') < 0 {
		r.ID = string(quoted[1 : len(quoted)-1])
	} else if r.ID, ok = unquote(quoted); !ok {
		return r, slab, false
	}
	if r.ID == "" {
		return r, slab, false
	}
	rest := b[end+len(upd):]
	if r.UpdatedAt, rest, ok = cutStamp(rest); !ok || r.UpdatedAt.IsZero() {
		return r, slab, false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"deleted_at":`)); !ok {
		return r, slab, false
	}
	if r.DeletedAt, rest, ok = cutStamp(rest); !ok {
		return r, slab, false
	}
	if after, found := bytes.CutPrefix(rest, []byte(`,"edited_at":`)); found {
		if r.EditedAt, rest, ok = cutStamp(after); !ok || r.EditedAt.IsZero() {
			return r, slab, false
		}
	}
	switch {
	case len(rest) == 1 && rest[0] == '}':
		r.Data = json.RawMessage("{}")
	case len(rest) > 1 && rest[0] == ',':
		if cap(slab)-len(slab) < len(rest) {
			slab = make([]byte, 0, max(len(rest), cap(slab)))
		}
		start := len(slab)
		slab = append(slab, '{')
		slab = append(slab, rest[1:]...)
		r.Data = slab[start:len(slab):len(slab)]
	default:
		return r, slab, false
	}
	return r, slab, true
}

// unquote reads a JSON string with escapes (kept out of readHead, whose
// record would otherwise live on the heap).
func unquote(quoted []byte) (string, bool) {
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return "", false
	}
	return s, true
}

// cutStamp reads an appendStamp value off the front of b.
func cutStamp(b []byte) (t time.Time, rest []byte, ok bool) {
	if after, found := bytes.CutPrefix(b, []byte("null")); found {
		return time.Time{}, after, true
	}
	const n = len(core.TimeLayout) - len("Z07:00") + len("Z") // 27
	if len(b) < n+2 || b[0] != '"' || b[n+1] != '"' {
		return t, b, false
	}
	t, ok = parseStamp(b[1 : n+1])
	if !ok {
		var err error
		if t, err = core.ParseTime(string(b[1 : n+1])); err != nil {
			return t, b, false
		}
	}
	return t, b[n+2:], true
}

// parseStamp reads a time in core.TimeLayout with a Z (as appendStamp
// writes it: 2006-01-02T15:04:05.000000Z) without allocating; ok is false
// for anything else, then core.ParseTime decides.
func parseStamp(b []byte) (time.Time, bool) {
	if len(b) != 27 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || b[26] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, j int) (int, bool) {
		n := 0
		for ; i < j; i++ {
			c := b[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 7)
	d, ok3 := num(8, 10)
	h, ok4 := num(11, 13)
	mi, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	us, ok7 := num(20, 26)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[mo-1]
	if mo == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		days = 29
	}
	if d > days {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, us*1000, time.UTC), true
}

// decodeRecordMap is decodeRecord for any flat record, through a map.
func decodeRecordMap(kind string, b []byte) (core.Record, error) {
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
// maxOps ops), and nothing is written for a bad push. The ops keep the
// wireOps' payloads (parseFrame's own copies), not copies of them.
func decodeOps(in []wireOp, maxOps int) ([]core.Op, error) {
	if maxOps > 0 && len(in) > maxOps {
		return nil, fmt.Errorf("%w: %d ops in one push, at most %d", core.ErrTooLarge, len(in), maxOps)
	}
	ops := make([]core.Op, len(in))
	seen := make(map[string]struct{}, len(in))
	for n := range in {
		w := &in[n]
		where := opAt(n)
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
			if op.BaseUpdatedAt, err = parseTime(w.BaseUpdatedAt); err != nil {
				return nil, fmt.Errorf("%s.baseUpdatedAt: %w", where, err)
			}
		}
		if w.EditedAt != "" {
			if op.EditedAt, err = parseTime(w.EditedAt); err != nil {
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
			op.Payload = payload
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

// opAt names the nth op of a push in an error.
type opAt int

func (n opAt) String() string { return "ops[" + strconv.Itoa(int(n)) + "]" }

// parseTime is core.ParseTime, without its allocations for a time in the
// layout appendStamp writes.
func parseTime(s string) (time.Time, error) {
	if len(s) == 27 {
		if t, ok := parseStamp([]byte(s)); ok {
			return t, nil
		}
	}
	return core.ParseTime(s)
}

// The push path's frames are written by hand, member by member in the
// order and with the omissions encoding/json would use for clientFrame and
// wireResult: encoding/json re-validates and compacts every raw payload
// and record it writes, which was a tenth of a push's CPU on each side.
// Payloads and records are valid JSON already (checkOp, appendRecord).

// pushFrameSize is the size of the push frame of ops (at most, when their
// strings need no escapes), so that it is written without growing.
func pushFrameSize(ops []wireOp, traceparent string) int {
	n := 64 + len(traceparent)
	for i := range ops {
		w := &ops[i]
		n += 160 + len(w.OpID) + len(w.Kind) + len(w.ID) + len(w.Payload)
	}
	return n
}

// resultsFrameSize is the size of the results frame answering ops with res
// (at most, when their strings need no escapes).
func resultsFrameSize(ops []core.Op, res []core.PushResult) int {
	n := 64
	for i := range res {
		n += 192 + len(ops[i].OpID) + len(res[i].Reason)
		if r := res[i].Record; r != nil {
			n += len(r.ID) + len(r.Data)
		}
	}
	return n
}

// appendPushFrame appends a push frame: id, the ops, the trace context.
func appendPushFrame(b []byte, id int64, ops []wireOp, traceparent string) []byte {
	b = append(b, `{"t":"push","id":`...)
	b = strconv.AppendInt(b, id, 10)
	if len(ops) > 0 {
		b = append(b, `,"ops":[`...)
		for i := range ops {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendOp(b, &ops[i])
		}
		b = append(b, ']')
	}
	if traceparent != "" {
		b = append(b, `,"traceparent":`...)
		b = wire.AppendString(b, traceparent)
	}
	return append(b, '}')
}

// appendOp appends one op as encoding/json writes a wireOp.
func appendOp(b []byte, w *wireOp) []byte {
	b = append(b, `{"opId":`...)
	b = wire.AppendString(b, w.OpID)
	b = append(b, `,"kind":`...)
	b = wire.AppendString(b, w.Kind)
	b = append(b, `,"id":`...)
	b = wire.AppendString(b, w.ID)
	b = append(b, `,"type":`...)
	b = wire.AppendString(b, w.Type)
	if len(w.Payload) > 0 {
		b = append(b, `,"payload":`...)
		b = append(b, w.Payload...)
	}
	if w.BaseUpdatedAt != "" {
		b = append(b, `,"baseUpdatedAt":`...)
		b = wire.AppendString(b, w.BaseUpdatedAt)
	}
	if w.EditedAt != "" {
		b = append(b, `,"editedAt":`...)
		b = wire.AppendString(b, w.EditedAt)
	}
	if w.Force {
		b = append(b, `,"force":true`...)
	}
	return append(b, '}')
}

// appendResults appends the results frame answering request id: one
// result per op, "results" present even when empty.
func appendResults(b []byte, id int64, ops []core.Op, res []core.PushResult) ([]byte, error) {
	b = append(b, `{"t":"results","id":`...)
	b = strconv.AppendInt(b, id, 10)
	b = append(b, `,"results":[`...)
	var err error
	for i := range res {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendResult(b, &ops[i], &res[i]); err != nil {
			return nil, err
		}
	}
	return append(b, "]}"...), nil
}

// appendResult appends one op's answer as encoding/json writes the
// wireResult of encodeResult.
func appendResult(b []byte, op *core.Op, pr *core.PushResult) ([]byte, error) {
	b = append(b, `{"opId":`...)
	b = wire.AppendString(b, op.OpID)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(wire.ResultStatus(pr.Status)), 10)
	var err error
	switch pr.Status {
	case core.StatusApplied:
		if pr.Record == nil {
			return b, errors.New("websocket: the authority applied an op without a record")
		}
		b = append(b, `,"record":`...)
		if b, err = appendRecord(b, pr.Record); err != nil {
			return b, err
		}
	case core.StatusConflict:
		if pr.Record != nil {
			b = append(b, `,"current":`...)
			if b, err = appendRecord(b, pr.Record); err != nil {
				return b, err
			}
		}
	}
	if code := wire.ResultCode(pr.Status); code != "" {
		b = append(b, `,"error":`...)
		b = wire.AppendString(b, code)
	}
	switch pr.Status {
	case core.StatusRejected:
		if pr.Reason != "" {
			b = append(b, `,"message":`...)
			b = wire.AppendString(b, pr.Reason)
		}
		if !pr.Permanent {
			b = append(b, `,"permanent":false`...)
		}
	case core.StatusRetry:
		if pr.Reason != "" {
			b = append(b, `,"message":`...)
			b = wire.AppendString(b, pr.Reason)
		}
		if s := pr.RetryAfter.Seconds(); s != 0 {
			b = append(b, `,"retryAfter":`...)
			b = strconv.AppendFloat(b, s, 'f', -1, 64)
		}
	}
	return append(b, '}'), nil
}

// pageFrameID returns the id of a page frame in the layout appendPage
// writes (`{"t":"page","id":N,` first); ok is false for any other frame,
// which is then read with encoding/json.
func pageFrameID(b []byte) (id int64, ok bool) {
	const head = `{"t":"page","id":`
	if !bytes.HasPrefix(b, []byte(head)) {
		return 0, false
	}
	i := len(head)
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9' && i < len(head)+18; i++ {
		id = id*10 + int64(b[i]-'0')
	}
	if i == len(head) || i >= len(b) || b[i] != ',' {
		return 0, false
	}
	return id, true
}

// decodePage reads a page frame of kind with jsontext: one strict pass
// over the frame, each record's bytes handed to decodeRecord as read (no
// reflection, no copy of the items before they are decoded). Unknown
// members are skipped, as encoding/json would.
func decodePage(kind string, b []byte, limit int) (core.Page, error) {
	page := core.Page{Remaining: -1}
	var slab []byte // the records' data, one allocation for the page
	dec := jsontext.NewDecoder(bytes.NewBuffer(b), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	bad := func(err error) (core.Page, error) {
		return core.Page{}, fmt.Errorf("%w: unreadable page frame: %v", core.ErrUnavailable, err)
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return bad(fmt.Errorf("not an object (%v)", err))
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return bad(err)
		}
		switch name.String() {
		case "items":
			if tok, err := dec.ReadToken(); err != nil {
				return bad(err)
			} else if tok.Kind() == 'n' {
				continue
			} else if tok.Kind() != '[' {
				return bad(errors.New("items is not an array"))
			}
			for dec.PeekKind() != ']' {
				v, err := dec.ReadValue()
				if err != nil {
					return bad(err)
				}
				if slab == nil {
					slab = make([]byte, 0, len(b))
				}
				rec, grown, ok := readHead(kind, v, slab)
				slab = grown
				if !ok {
					if rec, err = decodeRecordMap(kind, v); err != nil {
						return core.Page{}, err
					}
				}
				if page.Records == nil {
					page.Records = make([]core.Record, 0, min(max(limit, 1), 1000))
				}
				page.Records = append(page.Records, rec)
			}
			if _, err := dec.ReadToken(); err != nil {
				return bad(err)
			}
		case "nextPageToken":
			tok, err := dec.ReadToken()
			if err != nil {
				return bad(err)
			}
			switch tok.Kind() {
			case '"':
				page.NextPageToken = tok.String()
			case 'n':
			default:
				return bad(errors.New("nextPageToken is not a string"))
			}
		case "remaining":
			tok, err := dec.ReadToken()
			if err != nil {
				return bad(err)
			}
			switch tok.Kind() {
			case '0':
				if n, err := strconv.ParseInt(tok.String(), 10, 64); err == nil && n >= 0 {
					page.Remaining = n
				}
			case 'n':
			default:
				return bad(errors.New("remaining is not a number"))
			}
		default:
			if err := dec.SkipValue(); err != nil {
				return bad(err)
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return bad(err)
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return bad(errors.New("data after the frame"))
	}
	return page, nil
}

// members records which members of an object were read (bit n for the
// nth one a decoder knows), so that a duplicate is refused.
type members uint16

// dup reports whether member n was read already, and records it.
func (m *members) dup(n uint) bool {
	if *m&(1<<n) != 0 {
		return true
	}
	*m |= 1 << n
	return false
}

// parsePushFrame reads a push frame with jsontext in one strict pass,
// without reflection: ok only for a frame of valid JSON with exactly the
// members and token kinds a client writes (t, id, ops, each op's members,
// traceparent; no duplicates, valid UTF-8), which it reads as encoding/json
// would. Any other frame (malformed JSON included) is left to parseFrame's
// other path (ok false), so that what parseFrame accepts and refuses does
// not change. The ops' payloads share one allocation, not b.
func parsePushFrame(b []byte) (f clientFrame, ok bool) {
	if !bytes.HasPrefix(b, []byte(`{"t":"push",`)) {
		return f, false
	}
	var slab []byte // the payloads, copied out of b
	var seen members
	// Duplicate names are found by seen where they matter; inside a
	// payload they are kept, as encoding/json keeps a RawMessage.
	dec := jsontext.NewDecoder(bytes.NewBuffer(b), jsontext.AllowDuplicateNames(true))
	str := func() (string, bool) {
		tok, err := dec.ReadToken()
		if err != nil || tok.Kind() != '"' {
			return "", false
		}
		return tok.String(), true
	}
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return f, false
	}
	for dec.PeekKind() != '}' {
		name, ok := str()
		if !ok {
			return f, false
		}
		switch name {
		case "t":
			if seen.dup(0) {
				return f, false
			}
			if f.T, ok = str(); !ok {
				return f, false
			}
		case "id":
			if seen.dup(1) {
				return f, false
			}
			tok, err := dec.ReadToken()
			if err != nil || tok.Kind() != '0' {
				return f, false
			}
			id, err := strconv.ParseInt(tok.String(), 10, 64)
			if err != nil {
				return f, false
			}
			f.ID = &id
		case "traceparent":
			if seen.dup(2) {
				return f, false
			}
			if f.Traceparent, ok = str(); !ok {
				return f, false
			}
		case "ops":
			if seen.dup(3) {
				return f, false
			}
			f.Ops, ok = readArray(dec, &slab, len(b), f.Ops, func(ops []wireOp, slab []byte) (wireOp, []byte, bool) {
				prev := ""
				if len(ops) > 0 {
					prev = ops[len(ops)-1].Kind
				}
				return readOp(dec, slab, prev)
			})
			if !ok {
				return f, false
			}
		default:
			return f, false
		}
	}
	return f, frameEnd(dec) && f.T == tPush && f.ID != nil
}

// readArray reads a JSON array with read, one item at a time, appending
// the items to items. The items' bytes go to *slab, made at the first item
// with room for size bytes (the whole frame's), which read returns grown.
func readArray[T any](dec *jsontext.Decoder, slab *[]byte, size int, items []T,
	read func(items []T, slab []byte) (T, []byte, bool)) ([]T, bool) {
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
		return nil, false
	}
	for dec.PeekKind() != ']' {
		if *slab == nil {
			*slab = make([]byte, 0, size)
		}
		v, grown, ok := read(items, *slab)
		if !ok {
			return nil, false
		}
		*slab = grown
		items = append(items, v)
	}
	_, err := dec.ReadToken()
	return items, err == nil
}

// frameEnd reads the end of a frame's object and reports whether it came
// and nothing follows it.
func frameEnd(dec *jsontext.Decoder) bool {
	if _, err := dec.ReadToken(); err != nil {
		return false
	}
	_, err := dec.ReadToken()
	return errors.Is(err, io.EOF)
}

// readOp reads one op object of a push frame for parsePushFrame; its
// payload is appended to slab (which has room for every payload of the
// frame: it is the frame's size). It returns slab grown. An op of kind
// prev (the previous op's), and its type, share their strings.
func readOp(dec *jsontext.Decoder, slab []byte, prev string) (w wireOp, _ []byte, ok bool) {
	var seen members
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return w, slab, false
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil || name.Kind() != '"' {
			return w, slab, false
		}
		var dst *string
		switch name.String() {
		case "opId":
			if seen.dup(0) {
				return w, slab, false
			}
			dst = &w.OpID
		case "kind":
			if seen.dup(1) {
				return w, slab, false
			}
			tok, err := dec.ReadToken()
			if err != nil || tok.Kind() != '"' {
				return w, slab, false
			}
			if prev != "" && tok.String() == prev {
				w.Kind = prev
			} else {
				w.Kind = tok.String()
			}
			continue
		case "type":
			if seen.dup(2) {
				return w, slab, false
			}
			tok, err := dec.ReadToken()
			if err != nil || tok.Kind() != '"' {
				return w, slab, false
			}
			switch tok.String() {
			case string(core.OpUpsert):
				w.Type = string(core.OpUpsert)
			case string(core.OpDelete):
				w.Type = string(core.OpDelete)
			default:
				w.Type = tok.String()
			}
			continue
		case "id":
			if seen.dup(3) {
				return w, slab, false
			}
			dst = &w.ID
		case "baseUpdatedAt":
			if seen.dup(4) {
				return w, slab, false
			}
			dst = &w.BaseUpdatedAt
		case "editedAt":
			if seen.dup(5) {
				return w, slab, false
			}
			dst = &w.EditedAt
		case "payload":
			if seen.dup(6) {
				return w, slab, false
			}
			v, err := dec.ReadValue()
			if err != nil {
				return w, slab, false
			}
			start := len(slab)
			slab = append(slab, v...)
			w.Payload = json.RawMessage(slab[start:len(slab):len(slab)])
			continue
		case "force":
			if seen.dup(7) {
				return w, slab, false
			}
			tok, err := dec.ReadToken()
			if err != nil || (tok.Kind() != 't' && tok.Kind() != 'f') {
				return w, slab, false
			}
			w.Force = tok.Bool()
			continue
		default:
			return w, slab, false
		}
		tok, err := dec.ReadToken()
		if err != nil || tok.Kind() != '"' {
			return w, slab, false
		}
		*dst = tok.String()
	}
	_, err := dec.ReadToken()
	return w, slab, err == nil
}

// decodeResults reads a results frame with jsontext in one strict pass,
// without reflection: ok only for a frame of exactly the layout
// appendResults writes (t first, then id and results; each result's members
// among those of wireResult, with their exact names and token kinds; no
// duplicates, valid UTF-8), which it reads as encoding/json reads it into an
// inFrame. Any other frame is left to encoding/json (ok false), so that
// what the client takes and ignores does not change. The records share one
// allocation, not b.
func decodeResults(b []byte) (f *inFrame, ok bool) {
	if !bytes.HasPrefix(b, []byte(`{"t":"results",`)) {
		return nil, false
	}
	f = &inFrame{}
	var slab []byte // the records, copied out of b
	var seen members
	// As in parsePushFrame: duplicates are found by seen, kept inside a
	// record.
	dec := jsontext.NewDecoder(bytes.NewBuffer(b), jsontext.AllowDuplicateNames(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, false
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil || name.Kind() != '"' {
			return nil, false
		}
		switch name.String() {
		case "t":
			if seen.dup(0) {
				return nil, false
			}
			tok, err := dec.ReadToken()
			if err != nil || tok.Kind() != '"' {
				return nil, false
			}
			f.T = tok.String()
		case "id":
			if seen.dup(1) {
				return nil, false
			}
			v, err := dec.ReadValue() // as a json.RawMessage takes it
			if err != nil {
				return nil, false
			}
			f.ID = append(json.RawMessage(nil), v...)
		case "results":
			if seen.dup(2) {
				return nil, false
			}
			f.Results, ok = readArray(dec, &slab, len(b), make([]wireResult, 0, 16), func(_ []wireResult, slab []byte) (wireResult, []byte, bool) {
				return readResult(dec, slab)
			})
			if !ok {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return f, frameEnd(dec) && f.T == tResults && f.ID != nil && f.Results != nil
}

// readResult reads one result object of a results frame for
// decodeResults; its record (or current) is appended to slab, which has
// room for every record of the frame. It returns slab grown.
func readResult(dec *jsontext.Decoder, slab []byte) (r wireResult, _ []byte, ok bool) {
	var seen members
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return r, slab, false
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil || name.Kind() != '"' {
			return r, slab, false
		}
		var dst *string
		var raw *json.RawMessage
		switch name.String() {
		case "opId":
			if seen.dup(0) {
				return r, slab, false
			}
			dst = &r.OpID
		case "error":
			if seen.dup(1) {
				return r, slab, false
			}
			dst = &r.Error
		case "message":
			if seen.dup(2) {
				return r, slab, false
			}
			dst = &r.Message
		case "record":
			if seen.dup(3) {
				return r, slab, false
			}
			raw = &r.Record
		case "current":
			if seen.dup(4) {
				return r, slab, false
			}
			raw = &r.Current
		case "status":
			if seen.dup(5) {
				return r, slab, false
			}
			v, err := dec.ReadValue()
			if err != nil || v.Kind() != '0' {
				return r, slab, false
			}
			n, err := strconv.ParseInt(string(v), 10, 0)
			if err != nil {
				return r, slab, false
			}
			r.Status = int(n)
			continue
		case "retryAfter":
			if seen.dup(6) {
				return r, slab, false
			}
			v, err := dec.ReadValue()
			if err != nil || v.Kind() != '0' {
				return r, slab, false
			}
			s, err := strconv.ParseFloat(string(v), 64)
			if err != nil {
				return r, slab, false
			}
			r.RetryAfter = s
			continue
		case "permanent":
			if seen.dup(7) {
				return r, slab, false
			}
			tok, err := dec.ReadToken()
			if err != nil || (tok.Kind() != 't' && tok.Kind() != 'f') {
				return r, slab, false
			}
			p := tok.Bool()
			r.Permanent = &p
			continue
		default:
			return r, slab, false
		}
		if raw != nil {
			v, err := dec.ReadValue()
			if err != nil {
				return r, slab, false
			}
			start := len(slab)
			slab = append(slab, v...)
			*raw = slab[start:len(slab):len(slab)]
			continue
		}
		tok, err := dec.ReadToken()
		if err != nil || tok.Kind() != '"' {
			return r, slab, false
		}
		*dst = tok.String()
	}
	_, err := dec.ReadToken()
	return r, slab, err == nil
}
