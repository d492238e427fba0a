package bunstore

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/internal/jsonscan"
	"github.com/uptrace/bun/schema"
)

// dataArgs turns a record straight into the bound arguments of a typed
// kind's upsert, without building the model: the hot path of a pull page, a
// settle and a pushed batch. It handles the common shape only (flat objects
// of strings, numbers, booleans and nulls into string, integer, float and
// bool columns) and reports ok=false for anything else: escapes in strings
// aside, every input it is not sure to decode as encoding/json would —
// nested values, keys matching a field only by case, keys naming system or
// local fields, numbers that do not fit, type mismatches, invalid JSON. The
// caller then takes the model path (json.Unmarshal into the model), which
// also produces the errors. TestDataArgsMatchesModel checks the two agree.
type dataArgs struct {
	cols   []argCol          // one per statement column, in rowSQL.fields order
	byName map[string]int    // business JSON name -> column
	others map[string]bool   // lower-cased JSON names of every other field
	folded map[string]string // lower-cased business name -> its name
}

type argKind uint8

const (
	argZero    argKind = iota // local or JSON-less column: the zero value
	argID                     // the record's id
	argUpdated                // system timestamps
	argDeleted
	argEdited
	argString
	argBool
	argInt
	argUint
	argFloat
)

type argCol struct {
	kind     argKind
	bits     int  // integer and float sizes
	nullZero bool // bun writes the zero value as NULL
	zero     any  // the column's value when the JSON has none
}

// newDataArgs plans the direct decoding of a writable kind, or returns nil
// when some business column is not of a plain kind.
func newDataArgs(r *rowSQL, model reflect.Type, local []string) *dataArgs {
	if !r.writable {
		return nil
	}
	isLocal := map[string]bool{}
	for _, c := range local {
		isLocal[c] = true
	}
	d := &dataArgs{byName: map[string]int{}, others: map[string]bool{}, folded: map[string]string{}}
	for i, f := range r.fields {
		name, opts, _ := strings.Cut(f.StructField.Tag.Get("json"), ",")
		if name == "" {
			name = f.StructField.Name
		}
		c := argCol{nullZero: f.NullZero}
		switch {
		case f.Name == "id":
			c.kind = argID
		case f.Name == "updated_at":
			c.kind = argUpdated
		case f.Name == "deleted_at":
			c.kind = argDeleted
		case f.Name == "edited_at":
			c.kind = argEdited
		case isLocal[f.Name] || name == "-":
			c.kind = argZero
		default:
			k, bits, ok := plainKind(f)
			if !ok || opts != "" && opts != "omitempty" && opts != "omitzero" {
				return nil
			}
			c.kind, c.bits = k, bits
			d.byName[name] = i
			d.folded[strings.ToLower(name)] = name
		}
		if c.kind == argZero || c.kind >= argString {
			z, ok := zeroArg(f)
			if !ok {
				return nil
			}
			c.zero = z
		}
		d.cols = append(d.cols, c)
	}
	// Every other JSON name of the model (system, local, bun:"-" fields):
	// json.Unmarshal would decode into them, and may fail doing so.
	for _, f := range reflect.VisibleFields(model) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if _, business := d.byName[name]; name != "-" && !business {
			d.others[strings.ToLower(name)] = true
		}
	}
	return d
}

// plainKind classifies a business field that dataArgs can decode.
func plainKind(f *schema.Field) (argKind, int, bool) {
	t := f.StructField.Type
	if t.Implements(valuerType) || reflect.PointerTo(t).Implements(valuerType) ||
		reflect.PointerTo(t).Implements(reflect.TypeFor[json.Unmarshaler]()) ||
		reflect.PointerTo(t).Implements(reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()) {
		return 0, 0, false
	}
	switch t.Kind() {
	case reflect.String:
		return argString, 0, true
	case reflect.Bool:
		return argBool, 0, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return argInt, t.Bits(), true
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return argUint, t.Bits(), true
	case reflect.Float32, reflect.Float64:
		return argFloat, t.Bits(), true
	}
	return 0, 0, false
}

// zeroArg is the bound value of f's zero value, as appendArgs gives it.
func zeroArg(f *schema.Field) (any, bool) {
	if f.NullZero || f.StructField.Type.Kind() == reflect.Pointer {
		return nil, true
	}
	r := &rowSQL{fields: []*schema.Field{f}}
	strct := reflect.New(f.Table.Type).Elem()
	args, err := r.appendArgs(nil, strct)
	if err != nil {
		return nil, false
	}
	return args[0], true
}

// appendRecord appends rec's column values to args; ok=false means the
// model path must decode this record (args is then unchanged). settle sets
// the local deletion mark (column local) to rec.DeletedAt.
func (d *dataArgs) appendRecord(args []any, rec core.Record, settle bool, local int) ([]any, bool) {
	start := len(args)
	for _, c := range d.cols {
		var v any
		switch c.kind {
		case argID:
			v = rec.ID
		case argUpdated:
			v = microArg(rec.UpdatedAt.IsZero(), rec.UpdatedAt.UnixMicro())
		case argDeleted:
			v = microArg(rec.DeletedAt.IsZero(), rec.DeletedAt.UnixMicro())
		case argEdited:
			v = microArg(rec.EditedAt.IsZero(), rec.EditedAt.UnixMicro())
		default:
			v = c.zero
		}
		args = append(args, v)
	}
	if settle {
		args[start+local] = microArg(rec.DeletedAt.IsZero(), rec.DeletedAt.UnixMicro())
	}
	if !d.decode(args[start:], rec.Data) {
		return args[:start], false
	}
	return args, true
}

func microArg(zero bool, us int64) any {
	if zero {
		return nil
	}
	return us
}

// decode fills the business columns of row from the JSON object data.
func (d *dataArgs) decode(row []any, data []byte) bool {
	if len(data) == 0 { // no data: every business column keeps its zero value
		return true
	}
	s := jsonscan.Scanner{B: data}
	s.WS()
	if !s.Byte('{') {
		return false
	}
	s.WS()
	if s.Byte('}') {
		s.WS()
		return s.EOF()
	}
	for {
		s.WS()
		key, ok := s.PlainString()
		if !ok {
			return false
		}
		s.WS()
		if !s.Byte(':') {
			return false
		}
		s.WS()
		col, known := d.byName[string(key)] // no copy for a map lookup
		if !known {
			lower := strings.ToLower(string(key))
			if d.others[lower] || d.folded[lower] != "" {
				return false // a system, local or case-folded name: the model path decides
			}
			if !s.SkipScalar() {
				return false
			}
		} else if !d.value(row, col, &s) {
			return false
		}
		s.WS()
		if s.Byte(',') {
			continue
		}
		if !s.Byte('}') {
			return false
		}
		s.WS()
		return s.EOF()
	}
}

// value decodes one value into column col.
func (d *dataArgs) value(row []any, col int, s *jsonscan.Scanner) bool {
	c := d.cols[col]
	if s.Literal("null") {
		return true // encoding/json leaves a non-pointer field alone on null
	}
	var v any
	switch c.kind {
	case argString:
		str, ok := s.AnyString()
		if !ok {
			return false
		}
		if str == "" && c.nullZero {
			v = nil
		} else {
			v = str
		}
	case argBool:
		switch {
		case s.Literal("true"):
			v = true
		case s.Literal("false"):
			v = false
		default:
			return false
		}
		if v == false && c.nullZero {
			v = nil
		}
	case argInt, argUint, argFloat:
		num, ok := s.Number()
		if !ok {
			return false
		}
		switch c.kind {
		case argInt:
			n, err := strconv.ParseInt(num, 10, 64)
			if err != nil || n < -1<<(c.bits-1) || n > 1<<(c.bits-1)-1 {
				return false
			}
			v = n
			if n == 0 && c.nullZero {
				v = nil
			}
		case argUint:
			n, err := strconv.ParseUint(num, 10, 64)
			if err != nil || n > 1<<c.bits-1 {
				return false
			}
			v = int64(n)
			if n == 0 && c.nullZero {
				v = nil
			}
		default:
			f, err := strconv.ParseFloat(num, c.bits)
			if err != nil || (c.bits == 32 && math.Abs(f) > math.MaxFloat32) {
				return false
			}
			if c.bits == 32 {
				f = float64(float32(f))
			}
			v = f
			if f == 0 && c.nullZero {
				v = nil
			}
		}
	default:
		return false
	}
	row[col] = v
	return true
}
