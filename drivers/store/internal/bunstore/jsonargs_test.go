package bunstore

import (
	"database/sql"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite"
	"pgregory.net/rapid"
)

// argModel has a column of every kind dataArgs decodes, plus the fields it
// must leave to the model path.
type argModel struct {
	bun.BaseModel `bun:"table:arg_models"`

	ID      string  `bun:"id,pk" json:"id"`
	Title   string  `json:"title"`
	Note    string  `bun:",nullzero" json:"note"`
	Small   int8    `json:"small"`
	Count   int64   `json:"count"`
	Port    uint16  `json:"port"`
	Ratio   float32 `json:"ratio"`
	Score   float64 `json:"score,omitempty"`
	Done    bool    `json:"done"`
	Flag    bool    `bun:",nullzero" json:"flag"`
	Draft   string  `json:"draft" offsync:"local"`
	Ignored int     `bun:"-" json:"ignored"`
	core.SyncColumns
}

func argKindInfo(t *testing.T) *kindInfo {
	t.Helper()
	return kindInfoFor(t, core.NewTable[argModel]("arg"))
}

// rowModel is argModel without the field that is not a column, so that its
// rows can be written as records straight from the columns.
type rowModel struct {
	bun.BaseModel `bun:"table:row_models"`

	ID    string `bun:"id,pk" json:"id"`
	Title string `json:"title"`
	Note  string `bun:",nullzero" json:"note"`
	Small int8   `json:"small"`
	core.SyncColumns
	Count int64   `json:"count"`
	Port  uint16  `json:"port"`
	Ratio float32 `json:"ratio"`
	Score float64 `json:"score,omitempty"`
	Done  bool    `json:"done"`
	Flag  bool    `bun:",nullzero" json:"flag,omitzero"`
	Draft string  `json:"draft" offsync:"local"`
}

func kindInfoFor(t *testing.T, table core.Table) *kindInfo {
	t.Helper()
	sqldb, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	db := bun.NewDB(sqldb, sqlitedialect.New())
	if err := table.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &Store{db: db, read: db, d: testDialect{}, kinds: map[string]*kindInfo{}}
	k, err := s.inspect(table)
	if err != nil {
		t.Fatal(err)
	}
	if !k.rows.writable || k.rows.data == nil {
		t.Fatalf("%v should take the direct path: writable %v, data %v", k.typ, k.rows.writable, k.rows.data != nil)
	}
	return k
}

// testDialect names SQLite; inspect needs nothing else from a dialect.
type testDialect struct{ Dialect }

func (testDialect) Name() string { return "sqlite" }

// modelArgs is the reference: the record through the model, as bun's
// path and every non-direct write see it.
func modelArgs(k *kindInfo, rec core.Record, settle bool) ([]any, error) {
	t := &Tx{}
	m, err := t.model(k, rec, settle)
	if err != nil {
		return nil, err
	}
	return k.rows.appendArgs(nil, m.Elem())
}

func TestDataArgsMatchesModel(t *testing.T) {
	k := argKindInfo(t)
	keys := []string{"title", "note", "small", "count", "port", "ratio", "score", "done", "flag",
		"Title", "COUNT", "draft", "ignored", "id", "updated_at", "deleted_at", "edited_at", "unknown", "ti\\u0074le"}
	values := []string{`"plain"`, `""`, `"caf\u00e9"`, `"line\nbreak"`, `"tab\t"`, "\"\xff\xfe\"", `"é"`,
		`0`, `-0`, `1`, `-1`, `127`, `128`, `-129`, `65535`, `65536`, `-5`, `1.5`, `1e3`, `1E-2`, `3.4e39`,
		`9223372036854775807`, `9223372036854775808`, `01`, `1.`, `.5`, `-`,
		`true`, `false`, `null`, `{}`, `[1]`, `{"a":1}`, `nul`, `"unterminated`}
	rapid.Check(t, func(rt *rapid.T) {
		var b strings.Builder
		switch rapid.IntRange(0, 9).Draw(rt, "shape") {
		case 0:
			b.WriteString(rapid.SampledFrom([]string{"", " ", "{}", " { } ", "null", "[]", "{", `{"title":"x",}`, `{"title" "x"}`}).Draw(rt, "odd"))
		default:
			b.WriteString("{")
			n := rapid.IntRange(0, 6).Draw(rt, "n")
			for i := range n {
				if i > 0 {
					b.WriteString(rapid.SampledFrom([]string{",", " , "}).Draw(rt, "comma"))
				}
				b.WriteString(`"` + rapid.SampledFrom(keys).Draw(rt, "key") + `"`)
				b.WriteString(rapid.SampledFrom([]string{":", " : "}).Draw(rt, "colon"))
				b.WriteString(rapid.SampledFrom(values).Draw(rt, "value"))
			}
			b.WriteString("}")
		}
		rec := core.Record{Kind: "arg", ID: rapid.StringMatching(`[a-z0-9]{1,8}`).Draw(rt, "id"),
			UpdatedAt: time.UnixMicro(rapid.Int64Range(0, 2e15).Draw(rt, "u")).UTC(),
			Data:      json.RawMessage(b.String())}
		if rapid.Bool().Draw(rt, "deleted") {
			rec.DeletedAt = rec.UpdatedAt
		}
		settle := rapid.Bool().Draw(rt, "settle")
		want, werr := modelArgs(k, rec, settle)
		got, ok := k.rows.data.appendRecord(nil, rec, settle, k.rows.localI)
		if !ok {
			return // the model path decides; nothing to compare
		}
		if werr != nil {
			rt.Fatalf("data %s: direct decoding accepted what the model path refuses (%v): %#v", rec.Data, werr, got)
		}
		if !reflect.DeepEqual(got, want) {
			rt.Fatalf("data %s:\n direct %#v\n model  %#v", rec.Data, got, want)
		}
	})
}

// TestDataArgsTakesCommonShape guards against a direct path that gives up
// on everything (which TestDataArgsMatchesModel alone would accept).
func TestDataArgsTakesCommonShape(t *testing.T) {
	k := argKindInfo(t)
	for _, data := range []string{
		``,
		`{}`,
		`{"title":"a","note":"","small":-128,"count":42,"port":8080,"ratio":0.5,"score":1e2,"done":true,"flag":false}`,
		`{"title":"with \"escapes\" and \u00e9","unknown":3}`,
		`{"title":null,"count":null}`,
	} {
		rec := core.Record{Kind: "arg", ID: "x", Data: json.RawMessage(data)}
		got, ok := k.rows.data.appendRecord(nil, rec, false, k.rows.localI)
		if !ok {
			t.Errorf("data %q: direct decoding gave up", data)
			continue
		}
		want, err := modelArgs(k, rec, false)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("data %q:\n direct %#v\n model  %#v (%v)", data, got, want, err)
		}
	}
	for _, data := range []string{`{"Title":"a"}`, `{"count":1.5}`, `{"small":200}`, `{"draft":"x"}`,
		`{"ignored":"x"}`, `{"title":{}}`, `{"done":1}`, `{"updated_at":"x"}`, " ", `{"title":"a"} x`} {
		rec := core.Record{Kind: "arg", ID: "x", Data: json.RawMessage(data)}
		if _, ok := k.rows.data.appendRecord(nil, rec, false, k.rows.localI); ok {
			t.Errorf("data %q: direct decoding took what the model path must decide", data)
		}
	}
}

// TestRowJSONMatchesModel: whenever rowJSON builds a record from a row, it
// is the record the model path builds (same data bytes), for rows holding
// odd strings, NULLs, numbers out of a field's range and floats of every
// size.
func TestRowJSONMatchesModel(t *testing.T) {
	if k := argKindInfo(t); k.rows.json != nil {
		t.Fatal("argModel has a JSON field that is not a column: its records must take the model path")
	}
	k := kindInfoFor(t, core.NewTable[rowModel]("row"))
	if k.rows.json == nil {
		t.Fatal("rowModel should have a rowJSON")
	}
	strs := []any{nil, "", "plain", "a<b", "a&b", `q"q`, `b\s`, "line\nbreak", "é", "\u2028", "\xff", "tab\t"}
	ints := []any{nil, int64(0), int64(5), int64(-128), int64(-129), int64(127), int64(128), int64(65535), int64(65536), int64(-1), int64(1 << 40)}
	floats := []any{nil, 0.0, 1.5, 1e-7, 3.4e39, 1e21, 123456789.125, -2.5}
	bools := []any{nil, int64(0), int64(1), int64(2)}
	times := []any{nil, int64(1), int64(1_700_000_000_123_456)}
	safeInts := []any{nil, int64(0), int64(5), int64(-128), int64(127)}
	rapid.Check(t, func(rt *rapid.T) {
		vals := make([]any, len(k.rows.fields))
		ints := ints
		if rapid.Bool().Draw(rt, "safe") { // mostly values every field holds, so rows get compared
			ints = safeInts
		}
		for i, f := range k.rows.fields {
			switch f.Name {
			case "id":
				vals[i] = rapid.StringMatching(`[a-z0-9]{1,6}`).Draw(rt, "id")
			case "title", "note", "draft":
				vals[i] = rapid.SampledFrom(strs).Draw(rt, f.Name)
			case "small", "count", "port":
				vals[i] = rapid.SampledFrom(ints).Draw(rt, f.Name)
			case "ratio", "score":
				vals[i] = rapid.SampledFrom(floats).Draw(rt, f.Name)
			case "done", "flag":
				vals[i] = rapid.SampledFrom(bools).Draw(rt, f.Name)
			default:
				vals[i] = rapid.SampledFrom(times).Draw(rt, f.Name)
			}
		}
		got, ok := k.rows.json.record("row", vals)
		if !ok {
			return
		}
		want, err := k.rows.modelRecord(k, vals)
		if err != nil {
			rt.Fatalf("row %v: rowJSON built a record the model path refuses (%v)", vals, err)
		}
		if got.ID != want.ID || !got.UpdatedAt.Equal(want.UpdatedAt) || !got.DeletedAt.Equal(want.DeletedAt) ||
			!got.EditedAt.Equal(want.EditedAt) || string(got.Data) != string(want.Data) {
			rt.Fatalf("row %v:\n rowJSON %+v %s\n model   %+v %s", vals, got, got.Data, want, want.Data)
		}
	})
}

// TestRowJSONTakesPlainRows guards against a rowJSON that gives up on
// everything (which TestRowJSONMatchesModel alone would accept).
func TestRowJSONTakesPlainRows(t *testing.T) {
	k := kindInfoFor(t, core.NewTable[rowModel]("row"))
	vals := make([]any, len(k.rows.fields))
	for i, f := range k.rows.fields {
		switch f.Name {
		case "id", "title", "note", "draft":
			vals[i] = "x " + f.Name
		case "ratio", "score":
			vals[i] = 0.5
		default:
			vals[i] = int64(1)
		}
	}
	got, ok := k.rows.json.record("row", vals)
	if !ok {
		t.Fatalf("rowJSON gave up on %v", vals)
	}
	want, err := k.rows.modelRecord(k, vals)
	if err != nil || string(got.Data) != string(want.Data) {
		t.Fatalf("rowJSON %s, model %s (%v)", got.Data, want.Data, err)
	}
}
