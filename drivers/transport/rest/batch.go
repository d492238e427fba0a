package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/internal/jsonscan"
)

// This file decodes POST /batch bodies. The hot path is one pass of
// jsontext's Decoder over the body (it checks the syntax as it reads),
// without reflection. Its accepted
// inputs and its errors are those of the strict encoding/json decoding it
// replaced (DisallowUnknownFields into batchOp): keys match case-insensitively
// as encoding/json folds them, a null leaves a string or bool member as it
// was, a later duplicate member wins. The rare bodies whose outcome depends
// on more of encoding/json than that (an unknown field, a member of the
// wrong JSON type, "ops" given twice) are decoded by decodeBatchStd, so their
// results and error messages stay exactly what they were.

// batchOp is one op of a POST /batch body, decoded strictly; only the
// fallback decoder uses it. Its name and tags show in that decoder's error
// messages.
type batchOp struct {
	OpID          string          `json:"opId"`
	Kind          string          `json:"kind"`
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	BaseUpdatedAt *string         `json:"baseUpdatedAt"`
	EditedAt      *string         `json:"editedAt"`
	Force         bool            `json:"force"`
}

// wireOp is one decoded batch op before its checks. A null or absent time is
// "", as is an empty one: both mean "not set".
type wireOp struct {
	opID, kind, id, typ string
	payload             []byte // raw JSON; nil when absent
	base, edited        string
	force               bool
}

// errStdDecode sends a body to decodeBatchStd.
var errStdDecode = errors.New("rest: batch body needs the reflective decoder")

// decodeBatch parses and checks a POST /batch body. Every error wraps
// core.ErrInvalid (400) or core.ErrTooLarge (413, more than maxOps ops);
// nothing is written for a bad batch. Payloads are copied out of body.
func decodeBatch(body []byte, maxOps int) ([]core.Op, error) {
	ops, n, present, err := readBatch(body, maxOps)
	switch {
	case errors.Is(err, jsonscan.ErrSyntax):
		return nil, fmt.Errorf("%w: malformed JSON", core.ErrInvalid)
	case errors.Is(err, errNotObject), errors.Is(err, errStdDecode):
		// Reached before the end of the body: the rest may still be
		// malformed, which is said first, as the whole body's check always did.
		if !jsonscan.Valid(body) {
			return nil, fmt.Errorf("%w: malformed JSON", core.ErrInvalid)
		}
		if errors.Is(err, errNotObject) {
			return nil, fmt.Errorf("%w: the body must be a JSON object", core.ErrInvalid)
		}
		ops, err = decodeBatchStd(body)
		if err != nil {
			return nil, err
		}
		present = ops != nil
		n = len(ops)
	case err != nil:
		return nil, err
	}
	if !present {
		return nil, fmt.Errorf("%w: \"ops\" is required", core.ErrInvalid)
	}
	if n > maxOps {
		return nil, fmt.Errorf("%w: %d ops in one batch, at most %d", core.ErrTooLarge, n, maxOps)
	}
	return checkBatch(ops)
}

// decodeBatchStd decodes the envelope with encoding/json, exactly as the
// handler always did. The result is nil when "ops" is absent or null.
func decodeBatchStd(body []byte) ([]wireOp, error) {
	var in struct {
		Ops *[]batchOp `json:"ops"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%w: %v", core.ErrInvalid, err)
	}
	if in.Ops == nil {
		return nil, nil
	}
	ops := make([]wireOp, len(*in.Ops))
	for i, bo := range *in.Ops {
		op := wireOp{opID: bo.OpID, kind: bo.Kind, id: bo.ID, typ: bo.Type, payload: bo.Payload, force: bo.Force}
		if bo.BaseUpdatedAt != nil {
			op.base = *bo.BaseUpdatedAt
		}
		if bo.EditedAt != nil {
			op.edited = *bo.EditedAt
		}
		ops[i] = op
	}
	return ops, nil
}

// readBatch decodes a body's envelope in one pass with jsontext, which
// checks the syntax as it reads (jsonscan.ErrSyntax). It returns the ops (at
// most maxOps+1 of them are kept), how many there are, and whether "ops" was
// given and not null. errNotObject is a body that is not an object;
// errStdDecode means the body needs decodeBatchStd.
func readBatch(body []byte, maxOps int) (ops []wireOp, n int, present bool, err error) {
	dec := jsonscan.NewDecoder(body)
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, 0, false, jsonscan.Syntax(err)
	}
	if tok.Kind() != '{' {
		return nil, 0, false, errNotObject
	}
	seen := false
	for dec.PeekKind() != '}' {
		key, err := dec.ReadValue()
		if err != nil {
			return nil, 0, false, jsonscan.Syntax(err)
		}
		if !matchKey(key, "ops") || seen {
			return nil, 0, false, errStdDecode
		}
		seen = true
		switch dec.PeekKind() {
		case 'n':
			_, _ = dec.ReadToken()
			continue
		case '[':
		default:
			return nil, 0, false, errStdDecode
		}
		_, _ = dec.ReadToken()
		present = true
		ops = make([]wireOp, 0, min(maxOps+1, estimateOps(body)))
		var scratch wireOp
		for dec.PeekKind() != ']' {
			n++
			dst := &scratch
			if len(ops) <= maxOps {
				ops = append(ops, wireOp{})
				dst = &ops[len(ops)-1]
			} else {
				scratch = wireOp{}
			}
			switch dec.PeekKind() {
			case 'n':
				_, _ = dec.ReadToken()
				continue
			case '{':
			default:
				return nil, 0, false, errStdDecode
			}
			var prevKind string
			if len(ops) > 1 {
				prevKind = ops[len(ops)-2].kind
			}
			if err := readOp(dec, dst, prevKind); err != nil {
				return nil, 0, false, err
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, 0, false, jsonscan.Syntax(err)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, 0, false, jsonscan.Syntax(err)
	}
	if err := jsonscan.End(dec); err != nil {
		return nil, 0, false, err
	}
	return ops, n, present, nil
}

// estimateOps guesses the number of ops in a body from its size.
func estimateOps(body []byte) int { return len(body)/128 + 1 }

// The members of a batch op.
const (
	opUnknown = iota
	opOpID
	opKind
	opID
	opType
	opPayload
	opBase
	opEdited
	opForce
)

var opFieldNames = [...]string{opOpID: "opId", opKind: "kind", opID: "id", opType: "type",
	opPayload: "payload", opBase: "baseUpdatedAt", opEdited: "editedAt", opForce: "force"}

// opField classifies a raw key token of an op as encoding/json would match
// it to batchOp: the exact name first, then a case-folded one.
func opField(raw []byte) int {
	inner := raw[1 : len(raw)-1]
	if !hasEscape(inner) {
		switch string(inner) {
		case "opId":
			return opOpID
		case "kind":
			return opKind
		case "id":
			return opID
		case "type":
			return opType
		case "payload":
			return opPayload
		case "baseUpdatedAt":
			return opBase
		case "editedAt":
			return opEdited
		case "force":
			return opForce
		}
	}
	name := keyName(raw)
	for f := opOpID; f <= opForce; f++ {
		if name == opFieldNames[f] {
			return f
		}
	}
	for f := opOpID; f <= opForce; f++ {
		if strings.EqualFold(name, opFieldNames[f]) {
			return f
		}
	}
	return opUnknown
}

// matchKey reports whether a raw key token names field as encoding/json
// matches names: exactly or case-folded (Unicode simple folding).
func matchKey(raw []byte, field string) bool {
	inner := raw[1 : len(raw)-1]
	if !hasEscape(inner) && string(inner) == field {
		return true
	}
	return strings.EqualFold(keyName(raw), field)
}

// readOp decodes the members of the op object dec is at into op. A member
// of the wrong JSON type or an unknown one is errStdDecode. prevKind is
// reused when the op's kind is the same, to save an allocation per op. The
// payload is kept as a slice of the body (jsontext reads a bytes.Buffer in
// place).
func readOp(dec *jsontext.Decoder, op *wireOp, prevKind string) error {
	if _, err := dec.ReadToken(); err != nil { // '{'
		return jsonscan.Syntax(err)
	}
	for dec.PeekKind() != '}' {
		key, err := dec.ReadValue()
		if err != nil {
			return jsonscan.Syntax(err)
		}
		f := opField(key)
		switch f {
		case opPayload:
			val, err := dec.ReadValue()
			if err != nil {
				return jsonscan.Syntax(err)
			}
			op.payload = val
			continue
		case opForce:
			tok, err := dec.ReadToken()
			if err != nil {
				return jsonscan.Syntax(err)
			}
			switch tok.Kind() {
			case 't':
				op.force = true
			case 'f':
				op.force = false
			case 'n':
			default:
				return errStdDecode
			}
			continue
		case opUnknown:
			return errStdDecode
		}
		switch dec.PeekKind() {
		case 'n':
			// null leaves a string as it was and clears a *string.
			_, _ = dec.ReadToken()
			switch f {
			case opBase:
				op.base = ""
			case opEdited:
				op.edited = ""
			}
			continue
		case '"':
		default:
			return errStdDecode
		}
		val, err := dec.ReadValue()
		if err != nil {
			return jsonscan.Syntax(err)
		}
		switch f {
		case opOpID:
			op.opID = jsonText(val, "")
		case opKind:
			op.kind = jsonText(val, prevKind)
		case opID:
			op.id = jsonText(val, "")
		case opType:
			op.typ = jsonText(val, string(core.OpUpsert), string(core.OpDelete))
		case opBase:
			op.base = jsonText(val, "")
		case opEdited:
			op.edited = jsonText(val, "")
		}
	}
	if _, err := dec.ReadToken(); err != nil { // '}'
		return jsonscan.Syntax(err)
	}
	return nil
}

// jsonText returns the text of the valid JSON string token raw, as
// encoding/json unquotes it (invalid UTF-8 becomes U+FFFD). When the text
// equals one of known, that string is returned without allocating.
func jsonText(raw []byte, known ...string) string {
	inner := raw[1 : len(raw)-1]
	if !hasEscape(inner) && utf8.Valid(inner) {
		for _, k := range known {
			if string(inner) == k {
				return k
			}
		}
		return string(inner)
	}
	var s string
	_ = json.Unmarshal(raw, &s) // raw is a valid string token
	return s
}

// checkBatch turns decoded ops into core ops, checking each in order.
func checkBatch(in []wireOp) ([]core.Op, error) {
	ops := make([]core.Op, len(in))
	seen := make(map[string]struct{}, len(ops))
	for n := range in {
		bo := &in[n]
		where := func() string { return "ops[" + strconv.Itoa(n) + "]" }
		if err := wire.CheckOpID(bo.opID); err != nil {
			return nil, fmt.Errorf("%s.opId: %w", where(), err)
		}
		if _, dup := seen[bo.opID]; dup {
			return nil, fmt.Errorf("%w: %s: opId %q appears twice", core.ErrInvalid, where(), bo.opID)
		}
		seen[bo.opID] = struct{}{}
		if bo.kind == "" || reserved(bo.kind) {
			return nil, fmt.Errorf("%w: %s: kind %q", core.ErrInvalid, where(), bo.kind)
		}
		if bo.id == "" {
			return nil, fmt.Errorf("%w: %s: empty id", core.ErrInvalid, where())
		}
		op := core.Op{OpID: bo.opID, Kind: bo.kind, ID: bo.id, Force: bo.force}
		if bo.base != "" {
			t, err := core.ParseTime(bo.base)
			if err != nil {
				return nil, fmt.Errorf("%s.baseUpdatedAt: %w", where(), err)
			}
			op.BaseUpdatedAt = t
		}
		if bo.edited != "" {
			t, err := core.ParseTime(bo.edited)
			if err != nil {
				return nil, fmt.Errorf("%s.editedAt: %w", where(), err)
			}
			op.EditedAt = t
		}
		switch core.OpType(bo.typ) {
		case core.OpUpsert:
			op.Type = core.OpUpsert
			if len(bo.payload) == 0 || isNull(bo.payload) {
				return nil, fmt.Errorf("%w: %s: an upsert needs a payload object", core.ErrInvalid, where())
			}
			// The payload is a value of a valid body, so valid itself;
			// splitValid copies it out.
			f, err := splitValid(bo.payload, bo.id)
			if err != nil {
				return nil, fmt.Errorf("%s.payload: %w", where(), err)
			}
			op.Payload = f.payload
			if !f.base.IsZero() {
				if !op.BaseUpdatedAt.IsZero() && !op.BaseUpdatedAt.Equal(f.base) {
					return nil, fmt.Errorf("%w: %s: baseUpdatedAt and payload._baseUpdatedAt differ", core.ErrInvalid, where())
				}
				op.BaseUpdatedAt = f.base
			}
			if op.EditedAt.IsZero() {
				op.EditedAt = f.edited
			}
		case core.OpDelete:
			op.Type = core.OpDelete
			if len(bo.payload) > 0 && !isNull(bo.payload) {
				return nil, fmt.Errorf("%w: %s: a delete carries no payload", core.ErrInvalid, where())
			}
		default:
			return nil, fmt.Errorf("%w: %s: type must be \"upsert\" or \"delete\", got %q", core.ErrInvalid, where(), bo.typ)
		}
		ops[n] = op
	}
	return ops, nil
}
