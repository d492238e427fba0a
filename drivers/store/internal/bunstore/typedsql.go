package bunstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun/schema"
)

// rowSQL holds the statements of a typed kind's hot paths (reads of rows by
// id and of feed pages, upserts of many rows) with bound parameters. bun writes
// values into the SQL text, so SQLite would parse every statement anew; with
// bound parameters SQLite's statements are prepared once (see stmtCache) and
// Postgres's are cached by pgx.
//
// Reads scan through bun's own field scanners, so they work for every model.
// Writes bind each column's Go value, which is safe only for columns whose
// SQL form bun writes as the plain value: strings, booleans, integers,
// floats, []byte and driver.Valuer types (core.Timestamp). A model with any
// other column (JSON, arrays, times, defaults) has no write statements and
// takes bun's path.
type rowSQL struct {
	fields []*schema.Field // every column, in the statements' order
	cols   string          // their quoted names, comma-separated
	local  *schema.Field   // deleted_at_local
	localI int             // its index in fields
	data   *dataArgs       // direct decoding of records (nil: always the model path)

	feedFirst  string // the first page of the feed: ORDER BY updated_at, id LIMIT ?
	feedAfter  string // a page after a cursor (updated_at, id, limit)
	json       *rowJSON
	writable   bool
	upsertKeep map[int]string // rows per statement -> upsert keeping local-only columns
	upsertAll  map[int]string // the same, also writing deleted_at_local (SettleMany)
	selectIn   map[int]string // ids per statement -> SELECT cols WHERE id IN (...)
}

// rowBatches are the statement sizes: n rows are written as many statements
// of the largest sizes that fit, so each kind has a few statements only.
var rowBatches = []int{100, 10, 1}

// newRowSQL builds the statements of a typed kind from its bun schema.
// postgres selects $n placeholders.
func newRowSQL(sch *schema.Table, table string, updateSet string, local []string, postgres bool) *rowSQL {
	r := &rowSQL{fields: sch.Fields, local: sch.FieldMap["deleted_at_local"], writable: true,
		upsertKeep: map[int]string{}, upsertAll: map[int]string{}, selectIn: map[int]string{}}
	names := make([]string, len(sch.Fields))
	for i, f := range sch.Fields {
		names[i] = string(f.SQLName)
		if f == r.local {
			r.localI = i
		}
		if !bindable(f) {
			r.writable = false
		}
	}
	r.cols = strings.Join(names, ", ")
	order := " ORDER BY updated_at ASC, id ASC LIMIT "
	ph := placeholders(postgres)
	r.feedFirst = "SELECT " + r.cols + " FROM " + table + order + ph.next()
	ph = placeholders(postgres)
	// A row value, not "updated_at > ? OR (updated_at = ? AND id > ?)": with
	// bound parameters SQLite plans the OR as a scan of the whole index,
	// the row value as a seek.
	r.feedAfter = "SELECT " + r.cols + " FROM " + table + " WHERE (updated_at, id) > (" + ph.next() + ", " +
		ph.next() + ")" + order + ph.next()
	for _, n := range rowBatches {
		ph := placeholders(postgres)
		var b strings.Builder
		b.WriteString("SELECT " + r.cols + " FROM " + table + " WHERE id IN (")
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(ph.next())
		}
		b.WriteString(")")
		r.selectIn[n] = b.String()
	}
	if !r.writable {
		return r
	}
	r.data = newDataArgs(r, sch.Type, local)
	r.json = newRowJSON(r, sch.Type)
	for _, n := range rowBatches {
		ph := placeholders(postgres)
		var b strings.Builder
		b.WriteString("INSERT INTO " + table + " (" + r.cols + ") VALUES ")
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(")
			for j := range sch.Fields {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString(ph.next())
			}
			b.WriteString(")")
		}
		b.WriteString(" ON CONFLICT (id) DO UPDATE SET ")
		ins := b.String()
		r.upsertKeep[n] = ins + updateSet
		r.upsertAll[n] = ins + updateSet + ", deleted_at_local = EXCLUDED.deleted_at_local"
	}
	return r
}

// queries lists every statement, for preparing.
func (r *rowSQL) queries() []string {
	qs := []string{r.feedFirst, r.feedAfter}
	for _, m := range []map[int]string{r.selectIn, r.upsertKeep, r.upsertAll} {
		for _, q := range m {
			qs = append(qs, q)
		}
	}
	return qs
}

type placeholder struct {
	postgres bool
	n        int
}

func placeholders(postgres bool) *placeholder { return &placeholder{postgres: postgres} }

func (p *placeholder) next() string {
	p.n++
	if p.postgres {
		return "$" + strconv.Itoa(p.n)
	}
	return "?"
}

var (
	valuerType        = reflect.TypeFor[driver.Valuer]()
	queryAppenderType = reflect.TypeFor[schema.QueryAppender]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// bindable reports whether bun writes f as its plain Go value, so that
// binding the value stores what bun would.
func bindable(f *schema.Field) bool {
	if f.SQLDefault != "" || f.AutoIncrement || f.Identity {
		return false
	}
	for _, opt := range []string{"array", "json_use_number", "msgpack", "composite", "hstore", "multirange"} {
		if f.Tag.HasOption(opt) {
			return false
		}
	}
	if t := strings.ToLower(f.UserSQLType); strings.Contains(t, "json") || strings.Contains(t, "[]") {
		return false
	}
	typ := f.StructField.Type
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if typ.Implements(queryAppenderType) || reflect.PointerTo(typ).Implements(queryAppenderType) {
		return false
	}
	if typ.Implements(valuerType) {
		return true
	}
	if reflect.PointerTo(typ).Implements(valuerType) ||
		typ.Implements(jsonMarshalerType) || typ.Implements(textMarshalerType) {
		return false
	}
	switch typ.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Float32, reflect.Float64:
		return true
	case reflect.Slice:
		return typ.Elem().Kind() == reflect.Uint8 && typ.PkgPath() == ""
	}
	return false
}

// appendArgs appends the column values of the model strct (a struct value)
// in fields order.
func (r *rowSQL) appendArgs(args []any, strct reflect.Value) ([]any, error) {
	for _, f := range r.fields {
		if f.NullZero && f.HasZeroValue(strct) {
			args = append(args, nil)
			continue
		}
		v := f.Value(strct)
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				args = append(args, nil)
				continue
			}
			if !v.Type().Implements(valuerType) {
				v = v.Elem()
			}
		}
		if vl, ok := v.Interface().(driver.Valuer); ok {
			dv, err := vl.Value()
			if err != nil {
				return nil, fmt.Errorf("%w: column %s: %v", core.ErrInvalid, f.Name, err)
			}
			args = append(args, dv)
			continue
		}
		switch v.Kind() {
		case reflect.String:
			args = append(args, v.String())
		case reflect.Bool:
			args = append(args, v.Bool())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			args = append(args, v.Int())
		case reflect.Uint8, reflect.Uint16, reflect.Uint32:
			args = append(args, int64(v.Uint()))
		case reflect.Float32, reflect.Float64:
			args = append(args, v.Float())
		case reflect.Slice:
			if v.IsNil() {
				args = append(args, nil)
			} else {
				args = append(args, v.Bytes())
			}
		default:
			return nil, fmt.Errorf("offsync: column %s: cannot bind %s", f.Name, v.Type())
		}
	}
	return args, nil
}

// scanRows reads rows selected with r.cols into new models of typ and
// returns them as records.
func (r *rowSQL) scanRows(rows *sql.Rows, k *kindInfo, each func(core.Record) error) error {
	defer rows.Close()
	vals := make([]any, len(r.fields))
	ptrs := make([]any, len(r.fields))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		rec, err := r.modelRecord(k, vals)
		if err != nil {
			return err
		}
		if err := each(rec); err != nil {
			return err
		}
	}
	return rows.Err()
}

// getTyped reads one typed row by id.
func (t *Tx) getTyped(ctx context.Context, k *kindInfo, id string) (core.Record, error) {
	var out core.Record
	found := false
	err := t.typedIn(ctx, k, []string{id}, func(rec core.Record) error {
		out, found = rec, true
		return nil
	})
	if err != nil {
		return core.Record{}, err
	}
	if !found {
		return core.Record{}, fmt.Errorf("%s/%s: %w", k.table.Kind(), id, core.ErrNotFound)
	}
	return out, nil
}

// typedIn reads the typed rows among ids (at most inChunk).
func (t *Tx) typedIn(ctx context.Context, k *kindInfo, ids []string, each func(core.Record) error) error {
	for len(ids) > 0 {
		n := batchSize(len(ids))
		args := make([]any, n)
		for i := range n {
			args[i] = ids[i]
		}
		rows, err := t.query(ctx, k.rows.selectIn[n], args...)
		if err != nil {
			return t.dbErr("get many", err)
		}
		if err := k.rows.scanRows(rows, k, each); err != nil {
			return t.dbErr("get many", err)
		}
		ids = ids[n:]
	}
	return nil
}

// batchSize is the largest statement size that fits n rows.
func batchSize(n int) int {
	for _, b := range rowBatches {
		if b <= n {
			return b
		}
	}
	return 1
}

// upsertTyped writes the records of k for which keep is true with the bound
// statements (every record is checked first); settle also writes
// deleted_at_local. A record's arguments come straight from its data when
// dataArgs can decode it, else from the model.
func (t *Tx) upsertTyped(ctx context.Context, k *kindInfo, recs []core.Record, keep func(int) bool, settle bool) error {
	kept := make([]int, 0, len(recs))
	for i := range recs {
		recs[i].Kind = k.table.Kind()
		if err := checkObject(recs[i]); err != nil {
			return err
		}
		if keep(i) {
			kept = append(kept, i)
		}
	}
	stmts := k.rows.upsertKeep
	if settle {
		stmts = k.rows.upsertAll
	}
	var args []any
	for len(kept) > 0 {
		n := batchSize(len(kept))
		args = args[:0]
		for _, i := range kept[:n] {
			if k.rows.data != nil {
				var ok bool
				if args, ok = k.rows.data.appendRecord(args, recs[i], settle, k.rows.localI); ok {
					continue
				}
			}
			m, err := t.model(k, recs[i], settle)
			if err != nil {
				return err
			}
			if args, err = k.rows.appendArgs(args, m.Elem()); err != nil {
				return err
			}
		}
		if _, err := t.exec(ctx, stmts[n], args...); err != nil {
			return t.dbErr("upsert rows", err)
		}
		kept = kept[n:]
	}
	return nil
}
