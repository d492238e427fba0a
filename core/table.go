package core

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// SyncColumns are the system columns every typed table embeds. UpdatedAt is
// the authority's version of the row (the base of the next local edit),
// DeletedAt the authority's tombstone, EditedAt when the last edit was made,
// and DeletedAtLocal the local-only mark of a delete not yet pushed.
type SyncColumns struct {
	UpdatedAt      Timestamp `bun:"updated_at,type:bigint,nullzero" json:"updated_at"`
	DeletedAt      Timestamp `bun:"deleted_at,type:bigint,nullzero" json:"deleted_at,omitzero"`
	EditedAt       Timestamp `bun:"edited_at,type:bigint,nullzero" json:"edited_at,omitzero"`
	DeletedAtLocal Timestamp `bun:"deleted_at_local,type:bigint,nullzero" json:"-" offsync:"local"`
}

// The system fields of a record on the wire; a business field may not use
// these names, nor any name starting with "_".
var reservedFields = map[string]bool{
	"id": true, "updated_at": true, "deleted_at": true, "edited_at": true,
	"updatedAt": true, "deletedAt": true, "editedAt": true,
}

// Reserved kind names: routes of the REST form (batch, events, health) and
// the default places of the other wire forms and server pages on the same
// HTTP listener.
var reservedKinds = map[string]bool{"batch": true, "events": true, "health": true,
	"ws": true, "graphql": true, "metrics": true, "ui": true}

// ReservedKind reports whether name is reserved and can never be a kind.
func ReservedKind(name string) bool { return reservedKinds[name] }

var kindPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// CheckKind validates a kind name: [a-z][a-z0-9_]*, at most MaxKindBytes
// bytes, not reserved.
func CheckKind(kind string) error {
	if len(kind) > MaxKindBytes {
		return fmt.Errorf("%w: a kind has at most %d bytes, got %d", ErrInvalid, MaxKindBytes, len(kind))
	}
	if !kindPattern.MatchString(kind) {
		return fmt.Errorf("%w: kind %q must match [a-z][a-z0-9_]*", ErrInvalid, kind)
	}
	if reservedKinds[kind] {
		return fmt.Errorf("%w: kind %q is reserved", ErrInvalid, kind)
	}
	return nil
}

// CheckFieldName refuses the reserved names for business fields.
func CheckFieldName(name string) error {
	if reservedFields[name] || strings.HasPrefix(name, "_") {
		return fmt.Errorf("%w: %q", ErrReservedField, name)
	}
	return nil
}

// Table is a synced kind as a store and the engine see it: either typed (a
// bun model the user queries with bun) or a document table (rows kept as JSON
// in a system table).
type Table interface {
	Kind() string
	// Type is the model's struct type, or nil for a document table.
	Type() reflect.Type
	// LocalColumns are the SQL columns a pull never overwrites.
	LocalColumns() []string
	// SchemaVersion is the version payloads are written under now.
	SchemaVersion() int
	// Upgrade rewrites a payload written under an older schema version.
	Upgrade(ctx context.Context, from int, payload json.RawMessage) (json.RawMessage, error)
	// Validate reports a model that cannot be synced.
	Validate() error
	// ToRecord converts a pointer to a model into a record.
	ToRecord(model any) (Record, error)
	// FromRecord converts a record into a new pointer to a model.
	FromRecord(rec Record) (any, error)
}

// UpgradeFunc rewrites a payload written under schema version from.
type UpgradeFunc func(ctx context.Context, from int, payload json.RawMessage) (json.RawMessage, error)

// TableOption configures a table.
type TableOption func(*tableConfig)

type tableConfig struct {
	version int
	upgrade UpgradeFunc
}

// WithSchema sets the table's schema version and the hook that upgrades
// queued payloads written under older versions before they are pushed.
func WithSchema(version int, upgrade UpgradeFunc) TableOption {
	return func(c *tableConfig) { c.version, c.upgrade = version, upgrade }
}

// TypedTable is a kind backed by the bun model T, which must have a string
// primary key with the JSON name "id" and embed SyncColumns.
type TypedTable[T any] struct {
	kind     string
	cfg      tableConfig
	typ      reflect.Type
	err      error
	idIndex  []int
	syncIdx  []int
	local    []string // SQL column names
	localKey []string // JSON names to strip
	// shadow is a struct type holding only the business fields (with their
	// json tags), so a record's data is one json.Marshal; nil when the model
	// has embedded structs other than SyncColumns, which take the slow path.
	shadow   reflect.Type
	business [][]int // field indexes of the business fields in the model
}

// NewTable describes the typed kind kind over the bun model T. Problems with
// the model are reported by Validate, which Store.Register and NewEngine call.
func NewTable[T any](kind string, opts ...TableOption) *TypedTable[T] {
	t := &TypedTable[T]{kind: kind, cfg: tableConfig{version: 1}}
	for _, o := range opts {
		o(&t.cfg)
	}
	t.typ = reflect.TypeFor[T]()
	t.err = t.inspect()
	return t
}

func (t *TypedTable[T]) inspect() error {
	if err := CheckKind(t.kind); err != nil {
		return err
	}
	if t.typ.Kind() != reflect.Struct {
		return fmt.Errorf("%w: table %q: model %v is not a struct", ErrInvalid, t.kind, t.typ)
	}
	syncType := reflect.TypeFor[SyncColumns]()
	var shadow []reflect.StructField
	fast := true
	for i := 0; i < t.typ.NumField(); i++ {
		f := t.typ.Field(i)
		if f.Anonymous && f.Type == syncType {
			t.syncIdx = f.Index
			continue
		}
		if f.Name == "BaseModel" {
			continue
		}
		if f.Anonymous {
			fast = false
		}
		if !f.IsExported() {
			continue
		}
		jsonName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		bunName, bunOpts, _ := strings.Cut(f.Tag.Get("bun"), ",")
		if jsonName == "" {
			jsonName = f.Name
		}
		if bunName == "" {
			bunName = toSnake(f.Name)
		}
		isPK := strings.Contains(","+bunOpts+",", ",pk,")
		if isPK || jsonName == "id" {
			if f.Type.Kind() != reflect.String {
				return fmt.Errorf("%w: table %q: primary key %s must be a string", ErrInvalid, t.kind, f.Name)
			}
			if !isPK || jsonName != "id" || bunName != "id" {
				return fmt.Errorf("%w: table %q: primary key %s must be tagged `bun:\"id,pk\" json:\"id\"`", ErrInvalid, t.kind, f.Name)
			}
			t.idIndex = f.Index
			continue
		}
		if f.Tag.Get("offsync") == "local" {
			t.local = append(t.local, bunName)
			if jsonName != "-" {
				t.localKey = append(t.localKey, jsonName)
			}
			continue
		}
		if jsonName == "-" {
			continue
		}
		if err := CheckFieldName(jsonName); err != nil {
			return fmt.Errorf("table %q: field %s: %w", t.kind, f.Name, err)
		}
		t.business = append(t.business, f.Index)
		shadow = append(shadow, reflect.StructField{Name: f.Name, Type: f.Type, Tag: reflect.StructTag(`json:"` + f.Tag.Get("json") + `"`)})
	}
	if fast {
		t.shadow = reflect.StructOf(shadow)
	}
	if t.syncIdx == nil {
		return fmt.Errorf("%w: table %q: model %v does not embed core.SyncColumns", ErrInvalid, t.kind, t.typ)
	}
	if t.idIndex == nil {
		return fmt.Errorf("%w: table %q: model %v has no string primary key `bun:\"id,pk\" json:\"id\"`", ErrInvalid, t.kind, t.typ)
	}
	t.local = append(t.local, "deleted_at_local")
	return nil
}

// toSnake mirrors bun's default column naming.
func toSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 && (s[i-1] < 'A' || s[i-1] > 'Z' || (i+1 < len(s) && s[i+1] >= 'a' && s[i+1] <= 'z')) {
				b.WriteByte('_')
			}
			b.WriteRune(r + 'a' - 'A')
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Kind implements Table.
func (t *TypedTable[T]) Kind() string { return t.kind }

// Type implements Table.
func (t *TypedTable[T]) Type() reflect.Type { return t.typ }

// LocalColumns implements Table.
func (t *TypedTable[T]) LocalColumns() []string { return t.local }

// SchemaVersion implements Table.
func (t *TypedTable[T]) SchemaVersion() int { return t.cfg.version }

// Upgrade implements Table.
func (t *TypedTable[T]) Upgrade(ctx context.Context, from int, p json.RawMessage) (json.RawMessage, error) {
	return upgrade(ctx, t.cfg, t.kind, from, p)
}

// Validate implements Table.
func (t *TypedTable[T]) Validate() error { return t.err }

func (t *TypedTable[T]) sync(v reflect.Value) *SyncColumns {
	return v.FieldByIndex(t.syncIdx).Addr().Interface().(*SyncColumns)
}

// ToRecord implements Table; model must be a *T.
func (t *TypedTable[T]) ToRecord(model any) (Record, error) {
	m, ok := model.(*T)
	if !ok || m == nil {
		return Record{}, fmt.Errorf("%w: table %q wants *%v, got %T", ErrInvalid, t.kind, t.typ, model)
	}
	return t.Record(m)
}

// Record converts m into a record.
func (t *TypedTable[T]) Record(m *T) (Record, error) {
	if t.err != nil {
		return Record{}, t.err
	}
	v := reflect.ValueOf(m).Elem()
	sc := t.sync(v)
	rec := Record{
		Kind:      t.kind,
		ID:        v.FieldByIndex(t.idIndex).String(),
		UpdatedAt: sc.UpdatedAt.Time,
		DeletedAt: sc.DeletedAt.Time,
		EditedAt:  sc.EditedAt.Time,
	}
	if t.shadow != nil {
		sv := reflect.New(t.shadow)
		se := sv.Elem()
		for i, idx := range t.business {
			se.Field(i).Set(v.FieldByIndex(idx))
		}
		data, err := json.Marshal(sv.Interface())
		if err != nil {
			return Record{}, fmt.Errorf("%w: table %q: %v", ErrInvalid, t.kind, err)
		}
		rec.Data = data
		return rec, nil
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return Record{}, fmt.Errorf("%w: table %q: %v", ErrInvalid, t.kind, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Record{}, fmt.Errorf("%w: table %q: model does not encode as an object", ErrInvalid, t.kind)
	}
	for k := range reservedFields {
		delete(fields, k)
	}
	for _, k := range t.localKey {
		delete(fields, k)
	}
	rec.Data, err = json.Marshal(fields)
	if err != nil {
		return Record{}, err
	}
	return rec, nil
}

// FromRecord implements Table; it returns a *T.
func (t *TypedTable[T]) FromRecord(rec Record) (any, error) { return t.Model(rec) }

// Model converts rec into a new *T.
func (t *TypedTable[T]) Model(rec Record) (*T, error) {
	if t.err != nil {
		return nil, t.err
	}
	m := new(T)
	if len(rec.Data) > 0 {
		if err := json.Unmarshal(rec.Data, m); err != nil {
			return nil, fmt.Errorf("%w: record %s/%s does not fit the model: %v", ErrInvalid, t.kind, rec.ID, err)
		}
	}
	v := reflect.ValueOf(m).Elem()
	v.FieldByIndex(t.idIndex).SetString(rec.ID)
	sc := t.sync(v)
	sc.UpdatedAt = TimestampOf(rec.UpdatedAt)
	sc.DeletedAt = TimestampOf(rec.DeletedAt)
	sc.EditedAt = TimestampOf(rec.EditedAt)
	return m, nil
}

// ID returns the primary key of m.
func (t *TypedTable[T]) ID(m *T) string {
	return reflect.ValueOf(m).Elem().FieldByIndex(t.idIndex).String()
}

// DocumentTable is a kind whose rows are JSON documents kept in a system
// table; it is read with Engine.Get and Engine.List.
type DocumentTable struct {
	kind string
	cfg  tableConfig
	err  error
}

// Documents describes a document kind.
func Documents(kind string, opts ...TableOption) *DocumentTable {
	d := &DocumentTable{kind: kind, cfg: tableConfig{version: 1}}
	for _, o := range opts {
		o(&d.cfg)
	}
	d.err = CheckKind(kind)
	return d
}

// Kind implements Table.
func (d *DocumentTable) Kind() string { return d.kind }

// Type implements Table; a document table has no model.
func (d *DocumentTable) Type() reflect.Type { return nil }

// LocalColumns implements Table.
func (d *DocumentTable) LocalColumns() []string { return []string{"deleted_at_local"} }

// SchemaVersion implements Table.
func (d *DocumentTable) SchemaVersion() int { return d.cfg.version }

// Upgrade implements Table.
func (d *DocumentTable) Upgrade(ctx context.Context, from int, p json.RawMessage) (json.RawMessage, error) {
	return upgrade(ctx, d.cfg, d.kind, from, p)
}

// Validate implements Table.
func (d *DocumentTable) Validate() error { return d.err }

// ToRecord implements Table; model must be a Record or *Record of this kind.
func (d *DocumentTable) ToRecord(model any) (Record, error) {
	switch r := model.(type) {
	case Record:
		return r, nil
	case *Record:
		return *r, nil
	}
	return Record{}, fmt.Errorf("%w: document table %q wants a Record, got %T", ErrInvalid, d.kind, model)
}

// FromRecord implements Table; it returns a *Record.
func (d *DocumentTable) FromRecord(rec Record) (any, error) { return &rec, nil }

func upgrade(ctx context.Context, cfg tableConfig, kind string, from int, p json.RawMessage) (json.RawMessage, error) {
	if from >= cfg.version {
		return p, nil
	}
	if cfg.upgrade == nil {
		return nil, fmt.Errorf("%w: kind %q: payload of schema version %d needs an upgrade hook to reach %d", ErrInvalid, kind, from, cfg.version)
	}
	return cfg.upgrade(ctx, from, p)
}

// CheckData validates business fields: a JSON object with no reserved names.
func CheckData(data json.RawMessage) error {
	d := bytes.TrimSpace(data)
	if len(d) == 0 || d[0] != '{' {
		return fmt.Errorf("%w: data must be a JSON object", ErrInvalid)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(d, &m); err != nil {
		return fmt.Errorf("%w: data: %v", ErrInvalid, err)
	}
	for k := range m {
		if err := CheckFieldName(k); err != nil {
			return err
		}
	}
	return nil
}
