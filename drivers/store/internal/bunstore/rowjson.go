package bunstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/offsync/offsync/core"
)

// rowJSON turns a typed kind's row, as the driver returns its columns, into
// a record without building the model: the authority's feed pages, where
// scanning into models and encoding them again was most of a page's cost.
// It exists for the kinds dataArgs decodes (flat models of strings,
// integers, floats and booleans, with no embedded struct but SyncColumns)
// and writes the data as the model path would (TypedTable.Record): the
// business fields in the model's order, encoded as encoding/json encodes
// them. A value it is not sure about (an unexpected driver type, a number
// the field cannot hold) makes it report ok=false, and the row takes the
// model path. TestRowJSONMatchesModel holds the two to the same bytes.
type rowJSON struct {
	cols                      []jsonCol // per column of rowSQL.fields
	id, updated, deleted, eds int       // column indexes of the system fields
}

type jsonCol struct {
	kind argKind // argString..argFloat for business fields, else argZero (not written)
	bits int
	key  []byte // `"name":`
	omit bool   // omitempty or omitzero: a zero value is left out
}

// newRowJSON plans the direct encoding of k's rows, or returns nil.
func newRowJSON(r *rowSQL, model reflect.Type) *rowJSON {
	if r.data == nil {
		return nil
	}
	// The model path writes the business fields in declaration order: every
	// one must be a column, in the same order.
	last := -1
	for i := range model.NumField() {
		f := model.Field(i)
		if f.Anonymous {
			if f.Type != reflect.TypeFor[core.SyncColumns]() && f.Name != "BaseModel" {
				return nil // the model path encodes such models another way
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if !f.IsExported() || name == "-" || name == "id" || f.Tag.Get("offsync") == "local" {
			continue
		}
		col, ok := r.data.byName[name]
		if !ok || col < last {
			return nil
		}
		last = col
	}
	w := &rowJSON{cols: make([]jsonCol, len(r.fields))}
	for i, f := range r.fields {
		switch f.Name {
		case "id":
			w.id = i
		case "updated_at":
			w.updated = i
		case "deleted_at":
			w.deleted = i
		case "edited_at":
			w.eds = i
		}
	}
	for name, i := range r.data.byName {
		c := r.data.cols[i]
		_, opts, _ := strings.Cut(r.fields[i].StructField.Tag.Get("json"), ",")
		key, err := json.Marshal(name)
		if err != nil {
			return nil
		}
		w.cols[i] = jsonCol{kind: c.kind, bits: c.bits, key: append(key, ':'), omit: opts != ""}
	}
	return w
}

// record builds the record of one row; vals are its columns as scanned.
func (w *rowJSON) record(kind string, vals []any) (core.Record, bool) {
	id, ok := vals[w.id].(string)
	if !ok {
		return core.Record{}, false
	}
	rec := core.Record{Kind: kind, ID: id}
	for _, t := range []struct {
		at  *time.Time
		col int
	}{{&rec.UpdatedAt, w.updated}, {&rec.DeletedAt, w.deleted}, {&rec.EditedAt, w.eds}} {
		switch v := vals[t.col].(type) {
		case nil:
		case int64:
			*t.at = fromMicro(v)
		default:
			return core.Record{}, false
		}
	}
	b := make([]byte, 0, 256)
	b = append(b, '{')
	for i, c := range w.cols {
		if c.kind == argZero {
			continue
		}
		start := len(b)
		if start > 1 {
			b = append(b, ',')
		}
		b = append(b, c.key...)
		zero, ok := false, false
		if b, zero, ok = appendValue(b, c, vals[i]); !ok {
			return core.Record{}, false
		}
		if zero && c.omit {
			b = b[:start]
		}
	}
	rec.Data = append(b, '}')
	return rec, true
}

// appendValue appends v, a driver value, as bun would scan it into a field
// of c's kind and encoding/json would then encode it.
func appendValue(b []byte, c jsonCol, v any) (_ []byte, zero, ok bool) {
	switch c.kind {
	case argString:
		var s string
		switch v := v.(type) {
		case nil:
		case string:
			s = v
		case []byte:
			s = string(v)
		default:
			return b, false, false
		}
		return appendJSONString(b, s), s == "", true
	case argBool:
		var t bool
		switch v := v.(type) {
		case nil:
		case bool:
			t = v
		case int64:
			t = v != 0
		default:
			return b, false, false
		}
		return strconv.AppendBool(b, t), !t, true
	case argInt, argUint:
		var n int64
		switch v := v.(type) {
		case nil:
		case int64:
			n = v
		default:
			return b, false, false
		}
		if c.kind == argInt && (n < -1<<(c.bits-1) || n > 1<<(c.bits-1)-1) ||
			c.kind == argUint && (n < 0 || n > 1<<c.bits-1) {
			return b, false, false
		}
		return strconv.AppendInt(b, n, 10), n == 0, true
	case argFloat:
		var f float64
		switch v := v.(type) {
		case nil:
		case float64:
			f = v
		case int64:
			f = float64(v)
		default:
			return b, false, false
		}
		var enc []byte
		var err error
		if c.bits == 32 {
			enc, err = json.Marshal(float32(f))
		} else {
			enc, err = json.Marshal(f)
		}
		if err != nil {
			return b, false, false
		}
		return append(b, enc...), f == 0, true
	}
	return b, false, false
}

// appendJSONString appends s quoted as encoding/json quotes it: directly
// when no byte needs an escape, else through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; {
		c := s[i]
		if c < utf8.RuneSelf {
			plain = c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		plain = r != utf8.RuneError && r != '\u2028' && r != '\u2029'
		i += size
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	enc, _ := json.Marshal(s)
	return append(b, enc...)
}

// typedFeed reads one page of a typed kind's feed (no scope filter, a
// limit) with the bound statements, building records with rowJSON where it
// can.
func (t *Tx) typedFeed(ctx context.Context, k *kindInfo, q core.ChangesQuery) ([]core.Record, error) {
	var rows *sql.Rows
	var err error
	if q.After.IsZero() {
		rows, err = t.query(ctx, k.rows.feedFirst, q.Limit)
	} else {
		u := q.After.UpdatedAt.UnixMicro()
		if q.After.UpdatedAt.IsZero() {
			u = 0
		}
		rows, err = t.query(ctx, k.rows.feedAfter, u, q.After.ID, q.Limit)
	}
	if err != nil {
		return nil, t.dbErr("changes", err)
	}
	defer rows.Close()
	vals := make([]any, len(k.rows.fields))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []core.Record
	var budget pageBudget
	kind := k.table.Kind()
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, t.dbErr("changes", err)
		}
		rec, ok := k.rows.json.record(kind, vals)
		if !ok {
			if rec, err = k.rows.modelRecord(k, vals); err != nil {
				return nil, t.dbErr("changes", err)
			}
		}
		out = append(out, rec)
		if budget.full(q, &out[len(out)-1], len(out)) {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, t.dbErr("changes", err)
	}
	return out, nil
}

// modelRecord builds the record of one row through the model.
func (r *rowSQL) modelRecord(k *kindInfo, vals []any) (core.Record, error) {
	m := reflect.New(k.typ)
	strct := m.Elem()
	for i, f := range r.fields {
		if err := f.ScanValue(strct, vals[i]); err != nil {
			return core.Record{}, fmt.Errorf("column %s: %w", f.Name, err)
		}
	}
	return k.table.ToRecord(m.Interface())
}
