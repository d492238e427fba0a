package gqlserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/offsync/offsync/core"
)

// The schema's two scalars are bound here (gqlgen.yml): Time to time.Time
// (a zero time is null, so a nullable Time field needs no pointer) and JSON
// to json.RawMessage, written as it is stored: a page's data is never
// decoded and re-encoded on its way out.

// MarshalTime writes t as RFC 3339 UTC with microseconds, or null when zero.
func MarshalTime(t time.Time) graphql.Marshaler {
	if t.IsZero() {
		return graphql.Null
	}
	return graphql.WriterFunc(func(w io.Writer) {
		var buf [40]byte
		b := append(buf[:0], '"')
		b = core.Micro(t).AppendFormat(b, core.TimeLayout)
		b = append(b, '"')
		_, _ = w.Write(b)
	})
}

// UnmarshalTime reads a Time argument: a string in RFC 3339 with at most
// microseconds (core.ParseTime), never rounded.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: Time must be an RFC 3339 string, got %s", core.ErrInvalid, jsonType(v))
	}
	return core.ParseTime(s)
}

// MarshalJSONObject writes data as it is (it is a JSON object already: the
// authority stores nothing else); empty data is {}.
func MarshalJSONObject(data json.RawMessage) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		if len(data) == 0 {
			_, _ = io.WriteString(w, "{}")
			return
		}
		_, _ = w.Write(data)
	})
}

// UnmarshalJSONObject reads a JSON argument: an object only. Variables
// arrive decoded (numbers as json.Number, so no digit is lost) and are
// encoded again here; an inline literal arrives the same way.
func UnmarshalJSONObject(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok { // a pre-decoded body (see the POST transport)
		if i := firstByte(raw); i != '{' {
			return nil, fmt.Errorf("%w: JSON must be an object, got %s", core.ErrInvalid, rawType(i))
		}
		return raw, nil
	}
	m, ok := v.(map[string]any)
	if !ok || m == nil {
		return nil, fmt.Errorf("%w: JSON must be an object, got %s", core.ErrInvalid, jsonType(v))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, fmt.Errorf("%w: JSON: %v", core.ErrInvalid, err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

func rawType(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case 0:
		return "nothing"
	}
	return "a number"
}

// jsonType names the JSON type of a decoded value for error messages.
func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, int, int64, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
