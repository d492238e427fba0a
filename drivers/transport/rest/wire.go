package rest

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/jsonscan"
)

// This file holds the wire form of records: flat JSON objects with the
// system fields (id, updated_at, deleted_at, edited_at) beside the business
// fields. Pages are the hot path of a pull, so records are split and joined
// with a small scanner over already-validated bytes instead of maps.

var errNotObject = errors.New("not a JSON object")

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// skipString returns the index after the string token starting at b[i]=='"'.
func skipString(b []byte, i int) int {
	i++
	for i < len(b) {
		switch b[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return i
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// eachField calls fn with the raw key token (quotes included) and the raw
// value of every member of the JSON object b. b must be valid JSON.
func eachField(b []byte, fn func(key, val []byte) error) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotObject
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return errNotObject
		}
		switch b[i] {
		case '}':
			return nil
		case ',':
			i = skipWS(b, i+1)
		}
		ks := i
		i = skipString(b, i)
		key := b[ks:i]
		i = skipWS(b, i)
		i = skipWS(b, i+1) // ':'
		vs := i
		i = skipValue(b, i)
		if err := fn(key, b[vs:i]); err != nil {
			return err
		}
	}
}

// keyName returns the key's text. The common case (no escapes) does not
// allocate when the result is only compared.
func keyName(raw []byte) string {
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			_ = json.Unmarshal(raw, &s)
			return s
		}
	}
	return string(inner)
}

func hasEscape(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' {
			return true
		}
	}
	return false
}

// rawString returns the text of a raw JSON value and whether it is a string.
func rawString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if !hasEscape(raw) {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func isNull(raw []byte) bool { return string(raw) == "null" }

// rawTime parses a raw JSON timestamp (a string, or null for zero).
func rawTime(name string, raw []byte) (time.Time, error) {
	if isNull(raw) {
		return time.Time{}, nil
	}
	s, ok := rawString(raw)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: %s must be a timestamp string or null", core.ErrInvalid, name)
	}
	t, err := core.ParseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// decodeRecord reads one flat record object (jsonscan.ReadRecord). The
// business fields are appended to *arena as a JSON object, and Data is a
// capped slice of it, so the records of an answer share a few allocations.
func decodeRecord(kind string, b []byte, arena *[]byte) (core.Record, error) {
	r, err := jsonscan.DecodeRecord(b, kind, arena)
	if errors.Is(err, jsonscan.ErrSyntax) {
		return r, fmt.Errorf("%w: record is not a JSON object", core.ErrInvalid)
	}
	return r, err
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = core.Micro(t).AppendFormat(b, core.TimeLayout)
	return append(b, '"')
}

// objectInner returns the members of a JSON object without its braces, or
// nil when data is empty, null or not an object.
func objectInner(data []byte) []byte {
	i := skipWS(data, 0)
	j := len(data)
	for j > i && isSpace(data[j-1]) {
		j--
	}
	if j-i < 2 || data[i] != '{' || data[j-1] != '}' {
		return nil
	}
	inner := data[i+1 : j-1]
	k := skipWS(inner, 0)
	if k == len(inner) {
		return nil
	}
	return inner[k:]
}

// appendRecord appends r in its flat wire form: id, updated_at, deleted_at,
// edited_at (when set), then the business fields.
func appendRecord(b []byte, r *core.Record) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, r.ID)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, r.UpdatedAt)
	b = append(b, `,"deleted_at":`...)
	b = appendTime(b, r.DeletedAt)
	if !r.EditedAt.IsZero() {
		b = append(b, `,"edited_at":`...)
		b = appendTime(b, r.EditedAt)
	}
	if inner := objectInner(r.Data); inner != nil {
		b = append(b, ',')
		b = append(b, inner...)
	}
	return append(b, '}')
}

// bodyFields is a record body taken apart: the business fields and the
// system fields a client may send with them.
type bodyFields struct {
	payload json.RawMessage
	base    time.Time
	edited  time.Time
}

// splitBody parses a PUT body (or a batch op's payload): it must be a JSON
// object; system fields are checked for type and removed; an "id" must match
// id; other names starting with "_" are refused. Errors wrap core.ErrInvalid.
func splitBody(b []byte, id string) (bodyFields, error) {
	if !jsonscan.Valid(b) {
		return bodyFields{}, fmt.Errorf("%w: malformed JSON", core.ErrInvalid)
	}
	return splitValid(b, id)
}

// splitValid is splitBody for b already known to be valid JSON. The payload
// it returns is a new buffer, never a part of b.
func splitValid(b []byte, id string) (bodyFields, error) {
	var f bodyFields
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return f, fmt.Errorf("%w: the body must be a JSON object", core.ErrInvalid)
	}
	out := make([]byte, 0, len(b)+2)
	out = append(out, '{')
	first := true
	// Duplicate names are refused: a linear scan for small objects, a set
	// beyond that. Names are compared unescaped, as bytes of b when they
	// have no escapes, so a field costs no allocation.
	var nameArr [16][]byte
	names := nameArr[:0]
	var seen map[string]struct{}
	err := eachField(b, func(key, val []byte) error {
		nb := key[1 : len(key)-1]
		if hasEscape(nb) {
			nb = []byte(keyName(key))
		}
		dup := false
		if seen != nil {
			_, dup = seen[string(nb)]
			if !dup {
				seen[string(nb)] = struct{}{}
			}
		} else {
			for _, n := range names {
				if string(n) == string(nb) {
					dup = true
					break
				}
			}
			names = append(names, nb)
			if len(names) > 16 {
				seen = make(map[string]struct{}, 32)
				for _, n := range names {
					seen[string(n)] = struct{}{}
				}
			}
		}
		if dup {
			return fmt.Errorf("%w: field %q appears twice", core.ErrInvalid, string(nb))
		}
		var err error
		switch string(nb) {
		case "id":
			s, ok := rawString(val)
			if !ok {
				return fmt.Errorf("%w: id must be a string", core.ErrInvalid)
			}
			if s != id {
				return fmt.Errorf("%w: body id %q differs from the path id %q", core.ErrInvalid, s, id)
			}
		case "updated_at", "updatedAt", "deleted_at", "deletedAt":
			// Set by the authority; a client may echo them back. Checked, then ignored.
			_, err = rawTime(sysFieldName(nb), val)
		case "edited_at", "editedAt":
			f.edited, err = rawTime(sysFieldName(nb), val)
		case "_baseUpdatedAt":
			f.base, err = rawTime("_baseUpdatedAt", val)
		default:
			if len(nb) > 0 && nb[0] == '_' {
				return fmt.Errorf("%w: unknown system field %q", core.ErrInvalid, string(nb))
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = append(out, key...)
			out = append(out, ':')
			out = append(out, val...)
		}
		return err
	})
	if err != nil {
		return f, err
	}
	f.payload = append(out, '}')
	return f, nil
}

// sysFieldName returns the name of a system field as a constant, so that
// naming it in an error costs nothing when there is none.
func sysFieldName(nb []byte) string {
	for _, n := range [...]string{"updated_at", "updatedAt", "deleted_at", "deletedAt", "edited_at", "editedAt"} {
		if string(nb) == n {
			return n
		}
	}
	return string(nb)
}

// appendPutBody builds a PUT body from an op: the payload's fields plus
// _baseUpdatedAt and edited_at when set.
func appendPutBody(b []byte, op *core.Op) ([]byte, error) {
	b = append(b, '{')
	n := len(b)
	if len(op.Payload) > 0 && !isNull(op.Payload) {
		inner := objectInner(op.Payload)
		if inner == nil {
			i := skipWS(op.Payload, 0)
			if i >= len(op.Payload) || op.Payload[i] != '{' {
				return nil, fmt.Errorf("%w: op %s payload is not a JSON object", core.ErrInvalid, op.OpID)
			}
		}
		b = append(b, inner...)
	}
	sep := func() {
		if len(b) > n {
			b = append(b, ',')
		}
	}
	if !op.BaseUpdatedAt.IsZero() {
		sep()
		b = append(b, `"_baseUpdatedAt":`...)
		b = appendTime(b, op.BaseUpdatedAt)
	}
	if !op.EditedAt.IsZero() {
		sep()
		b = append(b, `"edited_at":`...)
		b = appendTime(b, op.EditedAt)
	}
	return append(b, '}'), nil
}
