package bunstore

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/schema"
)

// Schema evolution of typed tables. Register compares a typed kind's bun
// model with the table the database already has and makes the changes it
// can make without losing or inventing data:
//
//   - a column the model has and the table lacks is added when existing
//     rows can do without a value: it is nullable, or NOT NULL with a
//     default;
//   - a column the table has and the model lacks is kept (the data stays;
//     drop it with a migration of your own) unless it is NOT NULL without a
//     default, which would refuse every insert;
//   - everything else that differs — a column's type, a NOT NULL the model
//     cannot satisfy, a primary key other than id, a new UNIQUE or NOT NULL
//     column without a default — is refused with ErrSchemaChange, naming
//     the table, the column and what to do.
//
// Every check runs before any change, inside Register's write transaction,
// so a refused change leaves the database as it was.

// dbColumn is a column of an existing table as the database reports it.
type dbColumn struct {
	name       string
	typ        string // declared type (SQLite) or the type's canonical name (Postgres)
	notNull    bool
	hasDefault bool
	pk         bool
}

// change is one ALTER TABLE Register will run, and its log line.
type change struct {
	stmt string
	note string
	attr []slog.Attr
}

// note is one log line Register writes after its transaction commits.
type note struct {
	msg  string
	attr []slog.Attr
}

// docMigrations is where the refusals send the user.
const docMigrations = "see docs/migrations.md"

// tableColumns reads the columns of the table named name; ok is false when
// the table does not exist.
func (s *Store) tableColumns(ctx context.Context, db bun.IDB, sch *schema.Table) (cols []dbColumn, ok bool, err error) {
	var rows []struct {
		Name       string `bun:"name"`
		Typ        string `bun:"typ"`
		NotNull    bool   `bun:"not_null"`
		HasDefault bool   `bun:"has_default"`
		PK         bool   `bun:"pk"`
	}
	switch s.d.Name() {
	case "postgres":
		err = db.NewRaw(`SELECT a.attname AS name, format_type(a.atttypid, NULL) AS typ,
				a.attnotnull AS not_null, a.atthasdef AS has_default,
				COALESCE(a.attnum = ANY (i.indkey), false) AS pk
			FROM pg_attribute a
			LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
			WHERE a.attrelid = to_regclass(?) AND a.attnum > 0 AND NOT a.attisdropped
			ORDER BY a.attnum`, string(sch.SQLName)).Scan(ctx, &rows)
	default:
		err = db.NewRaw(`SELECT name, type AS typ, "notnull" <> 0 AS not_null,
				dflt_value IS NOT NULL AS has_default, pk <> 0 AS pk
			FROM pragma_table_info(?) ORDER BY cid`, sch.Name).Scan(ctx, &rows)
	}
	if err != nil {
		return nil, false, fmt.Errorf("offsync: %s: read the columns of table %s: %w", s.d.Name(), sch.Name, err)
	}
	for _, r := range rows {
		cols = append(cols, dbColumn{name: r.Name, typ: r.Typ, notNull: r.NotNull, hasDefault: r.HasDefault, pk: r.PK})
	}
	return cols, len(cols) > 0, nil
}

// sameType reports whether a column declared as have holds the values of a
// model field declared as want: on SQLite, the same type affinity (INTEGER
// and BIGINT store the same values); on Postgres, the same type, as the
// database names it (typmods such as a varchar length are not compared).
func (s *Store) sameType(ctx context.Context, db bun.IDB, have, want string) (bool, error) {
	if strings.EqualFold(strings.TrimSpace(have), strings.TrimSpace(want)) {
		return true, nil
	}
	if s.d.Name() != "postgres" {
		return sqliteAffinity(have) == sqliteAffinity(want), nil
	}
	var canon []string
	if err := db.NewRaw(`SELECT COALESCE(format_type(to_regtype(?), NULL), '')`, want).Scan(ctx, &canon); err != nil {
		return false, fmt.Errorf("offsync: postgres: read type %q: %w", want, err)
	}
	return len(canon) == 1 && canon[0] == have, nil
}

// sqliteAffinity is the type affinity SQLite gives a declared type
// (https://www.sqlite.org/datatype3.html, section 3.1).
func sqliteAffinity(declared string) string {
	t := strings.ToUpper(declared)
	switch {
	case strings.Contains(t, "INT"):
		return "INTEGER"
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"):
		return "TEXT"
	case strings.Contains(t, "BLOB"), strings.TrimSpace(t) == "":
		return "BLOB"
	case strings.Contains(t, "REAL"), strings.Contains(t, "FLOA"), strings.Contains(t, "DOUB"):
		return "REAL"
	}
	return "NUMERIC"
}

// nullable reports whether the model may write NULL into the field's column.
func nullable(f *schema.Field) bool {
	if f.NotNull || f.IsPK {
		return false
	}
	return f.NullZero || f.IsPtr
}

// uniqueFields are the model's fields with a UNIQUE constraint.
func uniqueFields(sch *schema.Table) map[string]bool {
	out := map[string]bool{}
	for _, fs := range sch.Unique {
		for _, f := range fs {
			out[f.Name] = true
		}
	}
	return out
}

// plan compares the model of info with the columns the table has and returns
// the changes to make, the notes to log, or the first change it refuses.
func (s *Store) plan(ctx context.Context, db bun.IDB, info *kindInfo, cols []dbColumn) ([]change, []note, error) {
	sch := info.sch
	kind := info.table.Kind()
	refuse := func(column, format string, args ...any) error {
		return fmt.Errorf("%w: table %s (kind %q), column %s: %s; %s",
			core.ErrSchemaChange, sch.Name, kind, column, fmt.Sprintf(format, args...), docMigrations)
	}
	have := map[string]dbColumn{}
	var pks []string
	for _, c := range cols {
		have[c.name] = c
		if c.pk {
			pks = append(pks, c.name)
		}
	}
	if !slices.Equal(pks, []string{"id"}) {
		key := strings.Join(pks, ", ")
		if key == "" {
			key = "none"
		}
		return nil, nil, refuse("id", "the table's primary key is (%s), the model's is (id): a renamed key cannot be changed in place; "+
			"copy the rows into a new table with a migration of your own", key)
	}
	unique := uniqueFields(sch)
	var changes []change
	var notes []note
	model := map[string]bool{}
	for _, f := range sch.Fields {
		model[f.Name] = true
		c, ok := have[f.Name]
		if !ok {
			switch {
			case unique[f.Name]:
				return nil, nil, refuse(f.Name, "a new UNIQUE column cannot be added to existing rows; add it without unique, "+
					"or create it and its index with a migration of your own")
			case f.NotNull && f.SQLDefault == "":
				return nil, nil, refuse(f.Name, "a new NOT NULL column needs a default for the rows that exist; "+
					"give the field one (`bun:\"%s,notnull,default:...\"`) or drop notnull", f.Name)
			}
			def := string(f.SQLName) + " " + f.CreateTableSQLType
			if f.NotNull {
				def += " NOT NULL"
			}
			if f.SQLDefault != "" {
				def += " DEFAULT " + f.SQLDefault
			}
			changes = append(changes, change{
				stmt: "ALTER TABLE " + string(sch.SQLName) + " ADD COLUMN " + def,
				note: "offsync: schema: added a column to a synced table",
				attr: []slog.Attr{slog.String("table", sch.Name), slog.String("kind", kind), slog.String("column", f.Name), slog.String("definition", def)},
			})
			continue
		}
		same, err := s.sameType(ctx, db, c.typ, f.CreateTableSQLType)
		if err != nil {
			return nil, nil, err
		}
		if !same {
			return nil, nil, refuse(f.Name, "the column's type is %s, the model's field %s wants %s: a type change is not made automatically; "+
				"keep the field's type, or convert the column with a migration of your own (and a table upgrade hook for queued edits)",
				c.typ, f.GoName, f.CreateTableSQLType)
		}
		if c.notNull && !c.hasDefault && nullable(f) {
			return nil, nil, refuse(f.Name, "the column is NOT NULL but the model's field %s may be NULL; "+
				"add notnull to its bun tag, or make the column nullable with a migration of your own", f.GoName)
		}
	}
	for _, c := range cols {
		if model[c.name] {
			continue
		}
		if c.notNull && !c.hasDefault {
			return nil, nil, refuse(c.name, "the column is NOT NULL without a default and no longer in the model, so every insert would fail; "+
				"keep the field in the model, or drop the column (or give it a default) with a migration of your own")
		}
		notes = append(notes, note{
			msg:  "offsync: schema: a column of a synced table is no longer in the model; kept with its data",
			attr: []slog.Attr{slog.String("table", sch.Name), slog.String("kind", kind), slog.String("column", c.name)},
		})
	}
	return changes, notes, nil
}

// evolve creates the typed table of info, or brings an existing one to the
// model, inside the write transaction tx. It returns the log lines to write
// once the transaction commits.
func (s *Store) evolve(ctx context.Context, tx bun.Tx, info *kindInfo) ([]note, error) {
	kind := info.table.Kind()
	cols, exists, err := s.tableColumns(ctx, tx, info.sch)
	if err != nil {
		return nil, err
	}
	if !exists {
		if _, err := tx.NewCreateTable().Model(info.sch.ZeroIface).Exec(ctx); err != nil {
			return nil, fmt.Errorf("offsync: %s: create table for %q: %w", s.d.Name(), kind, err)
		}
		return nil, nil
	}
	changes, notes, err := s.plan(ctx, tx, info, cols)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		if _, err := tx.ExecContext(ctx, c.stmt); err != nil {
			return nil, fmt.Errorf("%w: table %s (kind %q): %s: %v; %s", core.ErrSchemaChange, info.sch.Name, kind, c.stmt, err, docMigrations)
		}
		notes = append(notes, note{msg: c.note, attr: c.attr})
	}
	return notes, nil
}

// logger is the store's logger, or slog's default one.
func (s *Store) logger() *slog.Logger {
	if s.log != nil {
		return s.log
	}
	return slog.Default()
}
