package bunstore

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// kindInfo is what the store knows of a registered kind.
type kindInfo struct {
	table core.Table
	typed bool

	// typed kinds
	typ       reflect.Type // the model struct
	sch       *schema.Table
	ident     bun.Ident         // table name
	columns   map[string]string // JSON field name -> SQL column
	updateSet string            // "col = EXCLUDED.col, ..." of the columns a pull writes
	rows      *rowSQL           // statements with bound parameters
}

func (s *Store) kind(kind string) (*kindInfo, error) {
	s.mu.RLock()
	k := s.kinds[kind]
	s.mu.RUnlock()
	if k == nil {
		return nil, fmt.Errorf("%w: %q", core.ErrUnknownKind, kind)
	}
	return k, nil
}

// Kinds returns the registered tables.
func (s *Store) Kinds() []core.Table {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]core.Table, 0, len(s.kinds))
	for _, k := range s.kinds {
		out = append(out, k.table)
	}
	return out
}

// Register implements core.Store: it runs the system migrations (once per
// Store), validates every table, then creates the typed tables that are
// missing with their (updated_at, id) index and brings the existing ones to
// their models (evolve.go: a new nullable or defaulted column is added and
// logged; a change that could lose data fails with core.ErrSchemaChange), in
// one write transaction. A bad table or a refused change fails the call
// before anything is changed. Register may be called again with more
// tables; a kind registered again must keep its model.
func (s *Store) Register(ctx context.Context, tables ...core.Table) error {
	if s.txFrom(ctx) != nil {
		return fmt.Errorf("%w: Register inside a transaction", core.ErrInvalid)
	}
	s.schemaMu.Lock()
	defer s.schemaMu.Unlock()

	infos := make([]*kindInfo, 0, len(tables))
	seen := map[string]bool{}
	names := map[string]string{} // SQL table -> kind
	s.mu.RLock()
	for kind, k := range s.kinds {
		if k.typed {
			names[k.sch.Name] = kind
		}
	}
	s.mu.RUnlock()
	for _, t := range tables {
		if t == nil {
			return fmt.Errorf("%w: Register: nil table", core.ErrInvalid)
		}
		if err := t.Validate(); err != nil {
			return fmt.Errorf("offsync: register %q: %w", t.Kind(), err)
		}
		if err := core.CheckKind(t.Kind()); err != nil {
			return fmt.Errorf("offsync: register: %w", err)
		}
		if seen[t.Kind()] {
			return fmt.Errorf("%w: kind %q given twice", core.ErrInvalid, t.Kind())
		}
		seen[t.Kind()] = true
		info, err := s.inspect(t)
		if err != nil {
			return err
		}
		if old, _ := s.kind(t.Kind()); old != nil {
			if old.typ != info.typ {
				return fmt.Errorf("%w: kind %q is already registered with another model", core.ErrInvalid, t.Kind())
			}
		} else if info.typed {
			if other, dup := names[info.sch.Name]; dup && other != t.Kind() {
				return fmt.Errorf("%w: kinds %q and %q share the SQL table %q", core.ErrInvalid, other, t.Kind(), info.sch.Name)
			}
			names[info.sch.Name] = t.Kind()
		}
		infos = append(infos, info)
	}

	var notes []note
	err := s.update(ctx, func(ctx context.Context, ctx2 core.Tx) error {
		notes = notes[:0]
		tx := ctx2.(*Tx).tx
		if err := s.d.LockSchema(ctx, tx); err != nil {
			return fmt.Errorf("offsync: %s: lock schema: %w", s.d.Name(), err)
		}
		if !s.migrated {
			if err := migrate(ctx, tx, s.d); err != nil {
				return err
			}
		}
		if err := createVersionRows(ctx, tx, infos); err != nil {
			return err
		}
		for _, info := range infos {
			if !info.typed {
				continue
			}
			model := reflect.New(info.typ).Interface()
			n, err := s.evolve(ctx, tx, info)
			if err != nil {
				return err
			}
			notes = append(notes, n...)
			idx := info.sch.Name + "_offsync_feed"
			if _, err := tx.NewCreateIndex().Model(model).Index(idx).IfNotExists().
				Column("updated_at", "id").Exec(ctx); err != nil {
				return fmt.Errorf("offsync: %s: create index for %q: %w", s.d.Name(), info.table.Kind(), err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, n := range notes {
		s.logger().LogAttrs(ctx, slog.LevelInfo, n.msg, n.attr...)
	}
	s.migrated = true
	queries := s.sys.all()
	for _, info := range infos {
		if info.typed {
			queries = append(queries, info.rows.queries()...)
		}
	}
	if err := s.prepare(ctx, queries); err != nil {
		return err
	}
	s.mu.Lock()
	for _, info := range infos {
		s.kinds[info.table.Kind()] = info
	}
	s.mu.Unlock()
	return nil
}

var systemColumns = []string{"id", "updated_at", "deleted_at", "edited_at", "deleted_at_local"}

// inspect reads a typed table's bun schema.
func (s *Store) inspect(t core.Table) (info *kindInfo, err error) {
	info = &kindInfo{table: t, typ: t.Type()}
	if info.typ == nil {
		return info, nil
	}
	info.typed = true
	if info.typ.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%w: table %q: model %v is not a struct", core.ErrInvalid, t.Kind(), info.typ)
	}
	defer func() {
		if r := recover(); r != nil {
			info, err = nil, fmt.Errorf("%w: table %q: bun cannot use model %v: %v", core.ErrInvalid, t.Kind(), info.typ, r)
		}
	}()
	sch := s.db.Table(info.typ)
	info.sch = sch
	info.ident = bun.Ident(sch.Name)
	if strings.HasPrefix(sch.Name, "offsync_") {
		return nil, fmt.Errorf("%w: table %q: SQL table name %q is reserved", core.ErrInvalid, t.Kind(), sch.Name)
	}
	if len(sch.PKs) != 1 || sch.PKs[0].Name != "id" {
		return nil, fmt.Errorf("%w: table %q: the primary key must be the single column id", core.ErrInvalid, t.Kind())
	}
	for _, c := range systemColumns {
		if !sch.HasField(c) {
			return nil, fmt.Errorf("%w: table %q: model has no column %q (embed core.SyncColumns)", core.ErrInvalid, t.Kind(), c)
		}
	}
	local := map[string]bool{}
	for _, c := range t.LocalColumns() {
		if !sch.HasField(c) {
			return nil, fmt.Errorf("%w: table %q: local column %q is not in the model", core.ErrInvalid, t.Kind(), c)
		}
		local[c] = true
	}
	info.columns = map[string]string{}
	var set []string
	for _, f := range sch.Fields {
		if f.Name == "id" {
			continue
		}
		if !local[f.Name] {
			set = append(set, string(f.SQLName)+" = EXCLUDED."+string(f.SQLName))
		}
		jsonName, _, _ := strings.Cut(f.StructField.Tag.Get("json"), ",")
		if jsonName == "-" {
			continue
		}
		if jsonName == "" {
			jsonName = f.StructField.Name
		}
		info.columns[jsonName] = f.Name
	}
	info.updateSet = strings.Join(set, ", ")
	info.rows = newRowSQL(sch, string(sch.SQLName), info.updateSet, t.LocalColumns(), s.d.Name() == "postgres")
	return info, nil
}
