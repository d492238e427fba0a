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
	sqldb, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sqldb.Close() })
	db := bun.NewDB(sqldb, sqlitedialect.New())
	table := core.NewTable[argModel]("arg")
	if err := table.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &Store{db: db, read: db, d: testDialect{}, kinds: map[string]*kindInfo{}}
	k, err := s.inspect(table)
	if err != nil {
		t.Fatal(err)
	}
	if !k.rows.writable || k.rows.data == nil {
		t.Fatalf("argModel should take the direct path: writable %v, data %v", k.rows.writable, k.rows.data != nil)
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
