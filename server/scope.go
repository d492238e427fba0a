package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/offsync/offsync/core"
)

// inScope reports whether rec is visible through filter (nil = everything).
// A field's value is compared as its string content when it is a JSON
// string, and as its JSON text otherwise.
func inScope(rec core.Record, filter *core.Filter) bool {
	if filter == nil {
		return true
	}
	v, ok := fieldText(rec.Data, filter.Field)
	return ok && slices.Contains(filter.Values, v)
}

func fieldRaw(data json.RawMessage, field string) (json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, false
	}
	raw, ok := m[field]
	return raw, ok
}

func fieldText(data json.RawMessage, field string) (string, bool) {
	raw, ok := fieldRaw(data, field)
	if !ok {
		return "", false
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false
		}
		return s, true
	}
	if bytes.Equal(raw, []byte("null")) {
		return "", false
	}
	return string(raw), true
}

// setField returns payload (a JSON object) with field set to value, or
// removed when value is nil.
func setField(payload json.RawMessage, field string, value json.RawMessage) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", core.ErrInvalid, err)
	}
	if value == nil {
		if _, ok := m[field]; !ok {
			return payload, nil
		}
		delete(m, field)
	} else {
		m[field] = value
	}
	return json.Marshal(m)
}
