package jsonscan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/offsync/offsync/core"
)

// ErrSyntax marks input that is not JSON at all (a wire answer that a
// client should treat as a broken server rather than a bad record).
var ErrSyntax = errors.New("jsonscan: malformed JSON")

// lenient makes jsontext accept what encoding/json's Valid accepts, which
// the wire decoders always took: member names given twice and invalid
// UTF-8 (U+FFFD) inside strings. Without the name check the decoder also
// keeps no set of names per object.
var lenient = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// NewDecoder returns a jsontext decoder reading b in place.
func NewDecoder(b []byte) *jsontext.Decoder {
	return jsontext.NewDecoder(bytes.NewBuffer(b), lenient...)
}

// Syntax wraps a jsontext read error as ErrSyntax (io.ErrUnexpectedEOF for
// input that ends early is one too).
func Syntax(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %v", ErrSyntax, err)
}

// End reads the end of the input: anything but white space after the last
// value is ErrSyntax.
func End(dec *jsontext.Decoder) error {
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("data after the top-level value")
		}
		return Syntax(err)
	}
	return nil
}

// The system fields of a flat record, as SysKey classifies member names.
const (
	KeyOther = iota
	KeyID
	KeyUpdated
	KeyDeleted
	KeyEdited
)

// SysKey classifies a raw member name (quotes included), as read by
// jsontext's ReadValue: the system fields of the wire's flat record, in
// snake_case or camelCase, or KeyOther.
func SysKey(raw []byte) int {
	if bytes.IndexByte(raw, '\\') >= 0 {
		var s string
		if v, err := jsontext.AppendUnquote(nil, raw); err == nil {
			s = string(v)
		}
		raw = jsontext.Value(`"` + s + `"`)
	}
	switch string(raw) {
	case `"id"`:
		return KeyID
	case `"updated_at"`, `"updatedAt"`:
		return KeyUpdated
	case `"deleted_at"`, `"deletedAt"`:
		return KeyDeleted
	case `"edited_at"`, `"editedAt"`:
		return KeyEdited
	}
	return KeyOther
}

// ReadRecord reads the flat wire form of a record of kind, the next value
// of dec: an object with "id" (a string, or a number some per-op backends
// use), "updated_at", optional "deleted_at" and "edited_at" (RFC 3339
// strings or null; camelCase accepted), and the business fields, which are
// appended to *arena as one JSON object, each member as written: the
// record's Data is a capped slice of the arena, so a page's records share
// a few allocations. A record without an id or updated_at, or with a
// system field of the wrong type, is core.ErrInvalid; input that is not
// JSON is ErrSyntax.
func ReadRecord(dec *jsontext.Decoder, kind string, arena *[]byte) (core.Record, error) {
	r := core.Record{Kind: kind}
	tok, err := dec.ReadToken()
	if err != nil {
		return r, Syntax(err)
	}
	if tok.Kind() != '{' {
		dec.SkipValue() // the rest of an array or nothing: the caller fails anyway
		return r, fmt.Errorf("%w: record is not a JSON object", core.ErrInvalid)
	}
	a := *arena
	start := len(a)
	a = append(a, '{')
	first := true
	var haveID, haveUpdated bool
	for dec.PeekKind() != '}' {
		key, err := dec.ReadValue()
		if err != nil {
			return r, Syntax(err)
		}
		k := SysKey(key)
		if k == KeyOther {
			if !first {
				a = append(a, ',')
			}
			first = false
			a = append(a, key...)
			a = append(a, ':')
			val, err := dec.ReadValue()
			if err != nil {
				return r, Syntax(err)
			}
			a = append(a, val...)
			continue
		}
		tok, err := dec.ReadToken()
		if err != nil {
			return r, Syntax(err)
		}
		if k == KeyID {
			if k := tok.Kind(); k != '"' && k != '0' {
				return r, fmt.Errorf("%w: record id must be a string", core.ErrInvalid)
			}
			r.ID, haveID = tok.String(), true
			continue
		}
		name := [...]string{KeyUpdated: "updated_at", KeyDeleted: "deleted_at", KeyEdited: "edited_at"}[k]
		t, err := readTime(tok, name)
		if err != nil {
			return r, err
		}
		switch k {
		case KeyUpdated:
			r.UpdatedAt, haveUpdated = t, !t.IsZero()
		case KeyDeleted:
			r.DeletedAt = t
		case KeyEdited:
			r.EditedAt = t
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return r, Syntax(err)
	}
	if !haveID || r.ID == "" {
		return r, fmt.Errorf("%w: record without an id", core.ErrInvalid)
	}
	if !haveUpdated {
		return r, fmt.Errorf("%w: record %s/%s without updated_at", core.ErrInvalid, kind, r.ID)
	}
	a = append(a, '}')
	r.Data = a[start:len(a):len(a)]
	*arena = a
	return r, nil
}

// readTime reads a timestamp token: a string, or null for the zero time.
func readTime(tok jsontext.Token, name string) (t time.Time, err error) {
	switch tok.Kind() {
	case 'n':
		return t, nil
	case '"':
		v, err := core.ParseTime(tok.String())
		if err != nil {
			return t, fmt.Errorf("%s: %w", name, err)
		}
		return v, nil
	}
	return t, fmt.Errorf("%w: %s must be a timestamp string or null", core.ErrInvalid, name)
}

var decoders = sync.Pool{New: func() any { return new(jsontext.Decoder) }}

// DecodeRecord reads b, one record in the flat wire form (see ReadRecord)
// and nothing after it, with a pooled decoder.
func DecodeRecord(b []byte, kind string, arena *[]byte) (core.Record, error) {
	dec := decoders.Get().(*jsontext.Decoder)
	dec.Reset(bytes.NewBuffer(b), lenient...)
	r, err := ReadRecord(dec, kind, arena)
	if err == nil {
		err = End(dec)
	}
	dec.Reset(empty, lenient...) // drop b
	decoders.Put(dec)
	return r, err
}

var empty = bytes.NewReader(nil)
