package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// The merge helpers work on business fields as Record.Fields decodes them:
// json.Number for numbers, string, bool, nil, []any and map[string]any. Other
// Go values (an int, a []string, a struct) are first converted to that form
// through encoding/json, so maps built by hand merge the same way; a value
// encoding/json cannot handle is kept as an opaque scalar. Numbers compare by
// value (1 equals 1.0). No helper mutates its inputs, and the result shares no
// map or slice with them.
//
// List items are identified by their "id" field when they are objects with a
// scalar id, otherwise by deep equality; a list keeps at most one item per
// identity in a merged result.

// DefaultMerge returns server's fields with local's laid over them, field by
// field without looking inside values ({...server, ...local}).
//
// Like every merge helper, it takes values as Record.Fields decodes them
// (other Go values are converted through encoding/json first), compares
// numbers by value, never modifies its inputs and returns a map that shares
// nothing with them.
func DefaultMerge(local, server map[string]any) map[string]any {
	out := plainMap(server)
	for k, v := range plainMap(local) {
		out[k] = v
	}
	return out
}

// DeepMerge merges local into server recursively: objects present on both
// sides merge field by field, lists present on both sides are unioned without
// duplicates (server items first, in server order, then local items the server
// lacks; objects with the same "id" are deep-merged, local over server), and
// any other value comes from local.
func DeepMerge(local, server map[string]any) map[string]any {
	return deepMergeMap(plainMap(local), plainMap(server))
}

// PreservingMerge is the autoPreserve merge when the base version is unknown.
// It starts from server; each changed field (every local field when
// changedFields is nil) takes the local value, except that a list or object
// present on both sides is merged as DeepMerge does. A changed field missing
// from local was deleted there and is removed. System fields (id, updated_at,
// deleted_at, edited_at, created_at and their camelCase forms, and any name
// starting with "_") always keep the server's value.
func PreservingMerge(local, server map[string]any, changedFields []string) map[string]any {
	l, out := plainMap(local), plainMap(server)
	for _, f := range fieldsToApply(l, changedFields) {
		if isSystemField(f) {
			continue
		}
		lv, ok := l[f]
		if !ok {
			delete(out, f)
			continue
		}
		if sv, ok := out[f]; ok {
			out[f] = deepMergeValue(lv, sv)
		} else {
			out[f] = lv
		}
	}
	return out
}

// ThreeWayMerge merges a local edit and a server version that both started
// from base. It starts from server; a field changed locally takes the local
// value. A field counts as changed when it differs from base (presence
// included) and, if changedFields is not nil, is named there: a field the user
// edited and then set back is not a change. Lists and objects changed on both
// sides merge three-way: an item removed on either side stays removed, an item
// added on either side stays (items with an "id" are matched by id and merged
// three-way, others by deep equality; the order is the server's, then local
// additions in local order), and nested objects merge field by field the same
// way. Lists are sets: a merged list holds each item once, and a side whose
// list differs from base only by repeated items did not change it (so merging
// the same edit again changes nothing). A changed field that local no longer
// has is removed. System fields always keep the server's value (see
// PreservingMerge).
//
// A nil base means the base is unknown: ThreeWayMerge is then PreservingMerge.
func ThreeWayMerge(base, local, server map[string]any, changedFields []string) map[string]any {
	if base == nil {
		return PreservingMerge(local, server, changedFields)
	}
	b, l, out := plainMap(base), plainMap(local), plainMap(server)
	var fields []string
	if changedFields == nil {
		fields = unionKeys(b, l)
	} else {
		fields = slices.Clone(changedFields)
		slices.Sort(fields)
		fields = slices.Compact(fields)
	}
	for _, f := range fields {
		if isSystemField(f) {
			continue
		}
		applyChange(out, f, b, l)
	}
	return out
}

// applyChange applies field f of local to out (the server's fields) when it
// changed relative to base.
func applyChange(out map[string]any, f string, b, l map[string]any) {
	bv, inBase := b[f]
	lv, inLocal := l[f]
	switch {
	case !inLocal && !inBase:
		return
	case !inLocal:
		delete(out, f)
		return
	case inBase && equalValues(bv, lv):
		return
	}
	sv, inServer := out[f]
	if !inServer {
		out[f] = lv
		return
	}
	out[f] = merge3Value(bv, lv, sv, inBase)
}

// merge3Value merges one value changed locally; hasBase says whether base had
// the value at all.
func merge3Value(b, l, s any, hasBase bool) any {
	// Lists are sets: a side that only repeated an item did not change it.
	b, l, s = distinctItems(b), distinctItems(l), distinctItems(s)
	if equalValues(l, s) {
		return l
	}
	if hasBase && equalValues(s, b) {
		return l
	}
	switch lv := l.(type) {
	case map[string]any:
		sv, ok := s.(map[string]any)
		if !ok {
			return l
		}
		bv, _ := b.(map[string]any) // a missing or non-object base is an empty one
		return merge3Map(bv, lv, sv)
	case []any:
		sv, ok := s.([]any)
		if !ok {
			return l
		}
		bv, _ := b.([]any)
		return merge3List(bv, lv, sv)
	}
	return l
}

// merge3Map is ThreeWayMerge below the top level: every field that differs
// from base is a change, and no field is a system field.
func merge3Map(b, l, s map[string]any) map[string]any {
	out := make(map[string]any, len(s))
	for k, v := range s {
		out[k] = v
	}
	for _, f := range unionKeys(b, l) {
		applyChange(out, f, b, l)
	}
	return out
}

// merge3List merges lists three-way by item identity.
func merge3List(b, l, s []any) []any {
	inBase := indexItems(b)
	inLocal := indexItems(l)
	out := make([]any, 0, len(s)+len(l))
	emitted := map[string]bool{}
	for _, item := range s {
		k := itemKey(item)
		if emitted[k] {
			continue
		}
		bi, wasInBase := inBase[k]
		li, isLocal := inLocal[k]
		if wasInBase && !isLocal {
			continue // removed locally
		}
		emitted[k] = true
		if isLocal && isIDKey(k) {
			lm, sm := l[li].(map[string]any), item.(map[string]any)
			if wasInBase {
				item = merge3Value(b[bi], lm, sm, true)
			} else {
				item = deepMergeMap(lm, sm) // added on both sides
			}
		}
		out = append(out, item)
	}
	for _, item := range l {
		k := itemKey(item)
		if emitted[k] {
			continue
		}
		if _, wasInBase := inBase[k]; wasInBase {
			continue // removed on the server
		}
		emitted[k] = true
		out = append(out, item)
	}
	return out
}

// distinctItems returns a list without repeated items (first ones kept, in
// order); any other value, and a list without repeats, is returned as is.
func distinctItems(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	seen := make(map[string]bool, len(list))
	var out []any
	for i, item := range list {
		k := itemKey(item)
		if seen[k] {
			if out == nil {
				out = append(make([]any, 0, len(list)), list[:i]...)
			}
			continue
		}
		seen[k] = true
		if out != nil {
			out = append(out, item)
		}
	}
	if out == nil {
		return list
	}
	return out
}

func indexItems(list []any) map[string]int {
	m := make(map[string]int, len(list))
	for i, item := range list {
		k := itemKey(item)
		if _, dup := m[k]; !dup {
			m[k] = i
		}
	}
	return m
}

func deepMergeMap(l, s map[string]any) map[string]any {
	out := make(map[string]any, len(s)+len(l))
	for k, v := range s {
		out[k] = v
	}
	for k, lv := range l {
		if sv, ok := out[k]; ok {
			out[k] = deepMergeValue(lv, sv)
		} else {
			out[k] = lv
		}
	}
	return out
}

func deepMergeValue(l, s any) any {
	switch lv := l.(type) {
	case map[string]any:
		if sv, ok := s.(map[string]any); ok {
			return deepMergeMap(lv, sv)
		}
	case []any:
		if sv, ok := s.([]any); ok {
			return unionList(lv, sv)
		}
	}
	return l
}

// unionList returns server's items then local's new ones, one per identity;
// local items whose id the server has are deep-merged over the server's.
func unionList(l, s []any) []any {
	out := make([]any, 0, len(s)+len(l))
	pos := make(map[string]int, len(s)+len(l))
	for _, item := range s {
		k := itemKey(item)
		if _, dup := pos[k]; dup {
			continue
		}
		pos[k] = len(out)
		out = append(out, item)
	}
	for _, item := range l {
		k := itemKey(item)
		i, dup := pos[k]
		if !dup {
			pos[k] = len(out)
			out = append(out, item)
			continue
		}
		if isIDKey(k) {
			out[i] = deepMergeMap(item.(map[string]any), out[i].(map[string]any))
		}
	}
	return out
}

// itemKey is a list item's identity: "#" and its id for an object with a
// scalar id, "=" and its canonical form otherwise.
func itemKey(item any) string {
	if m, ok := item.(map[string]any); ok {
		if id, ok := m["id"]; ok {
			switch id.(type) {
			case nil, map[string]any, []any:
			default:
				var sb strings.Builder
				sb.WriteByte('#')
				writeCanonical(&sb, id)
				return sb.String()
			}
		}
	}
	var sb strings.Builder
	sb.WriteByte('=')
	writeCanonical(&sb, item)
	return sb.String()
}

func isIDKey(k string) bool { return strings.HasPrefix(k, "#") }

// writeCanonical writes a form of v in which equal values are equal strings:
// sorted object keys, numbers by exact value.
func writeCanonical(sb *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		sb.WriteString("null")
	case bool:
		sb.WriteString(strconv.FormatBool(x))
	case string:
		sb.WriteString(strconv.Quote(x))
	case []any:
		sb.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				sb.WriteByte(',')
			}
			writeCanonical(sb, e)
		}
		sb.WriteByte(']')
	case map[string]any:
		keys := sortedKeys(x)
		sb.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(strconv.Quote(k))
			sb.WriteByte(':')
			writeCanonical(sb, x[k])
		}
		sb.WriteByte('}')
	default:
		if r, ok := numberValue(v); ok {
			sb.WriteByte('n')
			sb.WriteString(r.RatString())
			return
		}
		fmt.Fprintf(sb, "%T:%#v", v, v)
	}
}

// equalValues reports whether two plain values are deeply equal, numbers
// compared by value.
func equalValues(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalValues(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equalValues(xv, yv) {
				return false
			}
		}
		return true
	}
	if xn, ok := numberValue(a); ok {
		yn, ok := numberValue(b)
		return ok && xn.Cmp(yn) == 0
	}
	return reflect.DeepEqual(a, b)
}

// numberValue returns the exact value of a number of any Go numeric type or
// a json.Number.
func numberValue(v any) (*big.Rat, bool) {
	r := new(big.Rat)
	switch x := v.(type) {
	case json.Number:
		if _, ok := r.SetString(string(x)); !ok {
			return nil, false
		}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, false
		}
		r.SetFloat64(x)
	case float32:
		return numberValue(float64(x))
	case int:
		r.SetInt64(int64(x))
	case int8:
		r.SetInt64(int64(x))
	case int16:
		r.SetInt64(int64(x))
	case int32:
		r.SetInt64(int64(x))
	case int64:
		r.SetInt64(x)
	case uint:
		r.SetUint64(uint64(x))
	case uint8:
		r.SetUint64(uint64(x))
	case uint16:
		r.SetUint64(uint64(x))
	case uint32:
		r.SetUint64(uint64(x))
	case uint64:
		r.SetUint64(x)
	default:
		return nil, false
	}
	return r, true
}

// plainMap returns a deep copy of m in plain JSON form (never nil).
func plainMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = plainValue(v)
	}
	return out
}

// plainValue deep-copies v, converting values that are not plain JSON values
// through encoding/json.
func plainValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string, json.Number:
		return v
	case map[string]any:
		return plainMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plainValue(e)
		}
		return out
	}
	if _, ok := numberValue(v); ok {
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		return v
	}
	return out
}

// fieldsToApply is changedFields, or every local field when it is nil.
func fieldsToApply(local map[string]any, changedFields []string) []string {
	if changedFields == nil {
		return sortedKeys(local)
	}
	return changedFields
}

func unionKeys(a, b map[string]any) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// isSystemField reports whether a field belongs to the record's envelope and
// so is never taken from the local side of a merge.
func isSystemField(name string) bool {
	return reservedFields[name] || name == "created_at" || name == "createdAt" ||
		strings.HasPrefix(name, "_")
}
