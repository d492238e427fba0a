package jsonscan

import (
	"errors"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

func TestReadRecord(t *testing.T) {
	var arena []byte
	for _, c := range []struct {
		in   string
		id   string
		data string
	}{
		{`{"id":"a","updated_at":"2026-01-01T00:00:00.000001Z","x":[1, "}"] ,"y":{"z":null}}`, "a", `{"x":[1, "}"],"y":{"z":null}}`},
		{`{"id":42,"updatedAt":"2026-01-01T00:00:00Z","deletedAt":null,"v":1}`, "42", `{"v":1}`},
		{`{"\u0069d":"e","updated_at":"2026-01-01T00:00:00Z","v":1,"v":2}`, "e", `{"v":1,"v":2}`},          // escaped name; a name twice is kept as sent
		{"{\"id\":\"u\",\"updated_at\":\"2026-01-01T00:00:00Z\",\"s\":\"\xff\"}", "u", "{\"s\":\"\xff\"}"}, // invalid UTF-8 as json.Valid takes it
		{`{"id":"n","updated_at":"2026-01-01T00:00:00Z"}`, "n", `{}`},
	} {
		r, err := DecodeRecord([]byte(c.in), "k", &arena)
		if err != nil || r.Kind != "k" || r.ID != c.id || string(r.Data) != c.data || r.UpdatedAt.IsZero() {
			t.Errorf("%s: %+v %v (data %s)", c.in, r, err, r.Data)
		}
	}
	r, err := DecodeRecord([]byte(`{"id":"a","updated_at":"2026-01-01T00:00:00.5Z","deleted_at":"2026-01-02T00:00:00Z","edited_at":"2026-01-03T00:00:00Z"}`), "k", &arena)
	if err != nil || r.UpdatedAt.Nanosecond() != 500_000_000 || !r.DeletedAt.Equal(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) ||
		!r.EditedAt.Equal(time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("times: %+v %v", r, err)
	}
	for in, want := range map[string]error{
		`{"id":"a"}`:                                          core.ErrInvalid,
		`{"updated_at":"2026-01-01T00:00:00Z"}`:               core.ErrInvalid,
		`{"id":"","updated_at":"2026-01-01T00:00:00Z"}`:       core.ErrInvalid,
		`{"id":true,"updated_at":"2026-01-01T00:00:00Z"}`:     core.ErrInvalid,
		`{"id":"a","updated_at":5}`:                           core.ErrInvalid,
		`{"id":"a","updated_at":"yesterday"}`:                 core.ErrInvalid,
		`[1]`:                                                 core.ErrInvalid,
		`{"id":"a","updated_at":"2026-01-01T00:00:00Z"`:       ErrSyntax,
		`{"id":"a","updated_at":"2026-01-01T00:00:00Z"} {}`:   ErrSyntax,
		`{"id":"a","updated_at":"2026-01-01T00:00:00Z",}`:     ErrSyntax,
		`{"id":"a","updated_at":"2026-01-01T00:00:00Z","x":}`: ErrSyntax,
	} {
		if _, err := DecodeRecord([]byte(in), "k", &arena); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", in, err, want)
		}
	}
}
