package websocket

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	"pgregory.net/rapid"
)

// The fast path of decodeRecord (the head read in place) gives exactly
// what the encoding/json map path gives, for every record the server
// writes; ids with quotes, backslashes and the text of the next member
// included.
func TestDecodeHeadMatchesMapPath(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		id := rapid.OneOf(
			rapid.StringMatching(`[a-z0-9-]{1,12}`),
			rapid.SampledFrom([]string{`a"b`, `a\`, `\`, `","updated_at":"x`, `é ☃`, "tab\there", `<&>`, `\","updated_at":`}),
			rapid.String().Filter(func(s string) bool { return s != "" }),
		).Draw(rt, "id")
		stamp := func(name string, zero bool) time.Time {
			if zero && rapid.Bool().Draw(rt, name+"Zero") {
				return time.Time{}
			}
			return time.UnixMicro(rapid.Int64Range(1, 4102444800000000).Draw(rt, name)).UTC()
		}
		rec := core.Record{Kind: "todo", ID: id, UpdatedAt: stamp("updated", false),
			DeletedAt: stamp("deleted", true), EditedAt: stamp("edited", true)}
		fields := rapid.MapOf(rapid.StringMatching(`[a-z][a-zA-Z_ ]{0,6}`), rapid.OneOf(
			rapid.Just[any](nil), rapid.Bool().AsAny(), rapid.Int().AsAny(), rapid.String().AsAny(),
			rapid.Just[any](map[string]any{"nested": []any{1, "x", map[string]any{"id": "inner"}}}),
		)).Draw(rt, "fields")
		rec.Data, _ = json.Marshal(fields)
		b, err := encodeRecord(&rec)
		if err != nil {
			rt.Fatal(err)
		}
		if !json.Valid(b) {
			rt.Fatalf("encodeRecord wrote invalid JSON: %s", b)
		}
		fast, ok := decodeHead("todo", b)
		if !ok {
			rt.Fatalf("the server's own layout missed the fast path: %s", b)
		}
		slow, err := decodeRecordMap("todo", b)
		if err != nil {
			rt.Fatal(err)
		}
		var df, ds any
		if json.Unmarshal(fast.Data, &df) != nil || json.Unmarshal(slow.Data, &ds) != nil || !reflect.DeepEqual(df, ds) {
			rt.Fatalf("data: fast %s, map %s", fast.Data, slow.Data)
		}
		fast.Data, slow.Data = nil, nil
		if !reflect.DeepEqual(fast, slow) {
			rt.Fatalf("fast %+v, map %+v", fast, slow)
		}
		want := rec
		want.Data = nil
		if !fast.UpdatedAt.Equal(want.UpdatedAt) || fast.ID != want.ID || !fast.DeletedAt.Equal(want.DeletedAt) || !fast.EditedAt.Equal(want.EditedAt) {
			rt.Fatalf("decoded %+v from %+v", fast, want)
		}
	})
}

// Records in other layouts take the map path and still decode.
func TestDecodeRecordOtherLayouts(t *testing.T) {
	for _, c := range []struct{ in, id, data string }{
		{`{"title":"x","id":"a","updated_at":"2026-11-24T19:41:55.123456Z"}`, "a", `{"title":"x"}`},
		{`{"id":"a","updatedAt":"2026-11-24T19:41:55.123456Z","deletedAt":null}`, "a", `{}`},
		{`{"id":"a","updated_at":"2026-11-24T19:41:55.1Z","deleted_at":null,"t":1}`, "a", `{"t":1}`},
		{`{ "id":"a", "updated_at":"2026-11-24T19:41:55.123456Z", "deleted_at":null }`, "a", `{}`},
	} {
		r, err := decodeRecord("todo", []byte(c.in))
		if err != nil || r.ID != c.id || string(r.Data) != c.data {
			t.Errorf("%s: %+v (%s), %v", c.in, r, r.Data, err)
		}
	}
	for _, bad := range []string{`{"updated_at":"2026-11-24T19:41:55.123456Z"}`, `{"id":"a"}`, `{"id":"a","updated_at":"yesterday"}`, `[1]`} {
		if _, err := decodeRecord("todo", []byte(bad)); err == nil {
			t.Errorf("%s decoded", bad)
		}
	}
}

// parseStamp, the allocation-free reading of a record's times, agrees with
// core.ParseTime on every time it accepts, and accepts every time
// appendStamp writes; what it leaves (other layouts, bad dates) is
// core.ParseTime's to decide.
func TestParseStampMatchesParseTime(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		tm := time.UnixMicro(rapid.Int64Range(-62135596799999999, 253402300799999999).Draw(rt, "us")).UTC()
		s := []byte(core.FormatTime(tm))
		if rapid.Bool().Draw(rt, "mutate") {
			i := rapid.IntRange(0, len(s)-1).Draw(rt, "at")
			s[i] = rapid.SampledFrom([]byte("0123456789-:TZ.+x")).Draw(rt, "to")
		}
		got, ok := parseStamp(s)
		want, err := core.ParseTime(string(s))
		if ok && (err != nil || !got.Equal(want) || got != want) {
			rt.Fatalf("parseStamp(%s) = %v, core.ParseTime %v, %v", s, got, want, err)
		}
		if !ok && len(s) == 27 && err == nil && s[26] == 'Z' && string(s) == core.FormatTime(tm) {
			rt.Fatalf("parseStamp refused %s, which appendStamp writes", s)
		}
	})
	for _, bad := range []string{"2026-02-29T00:00:00.000000Z", "2026-13-01T00:00:00.000000Z", "2026-04-31T00:00:00.000000Z",
		"2026-01-01T24:00:00.000000Z", "2026-01-01T00:60:00.000000Z", "2026-01-01T00:00:60.000000Z", "2026-01-00T00:00:00.000000Z"} {
		if _, ok := parseStamp([]byte(bad)); ok {
			t.Errorf("parseStamp accepted %s", bad)
		}
	}
	if got, ok := parseStamp([]byte("2024-02-29T23:59:59.999999Z")); !ok || got != time.Date(2024, 2, 29, 23, 59, 59, 999999000, time.UTC) {
		t.Errorf("a leap day: %v %v", got, ok)
	}
}
