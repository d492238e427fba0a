package rest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

func TestRecordWireRoundTrip(t *testing.T) {
	in := core.Record{Kind: "k", ID: "a\"b\\c\x01\u2028é\xff", UpdatedAt: time.Date(2026, 11, 24, 19, 41, 55, 123456000, time.UTC),
		DeletedAt: time.Date(2026, 11, 24, 19, 41, 55, 1000, time.UTC), EditedAt: time.Unix(0, 999000).UTC(),
		Data: json.RawMessage(` { "x" : [1, "}"], "y":{"z":null} } `)}
	b := appendRecord(nil, &in)
	if !json.Valid(b) {
		t.Fatalf("not JSON: %s", b)
	}
	var arena []byte
	out, err := decodeRecord("k", b, &arena)
	if err != nil {
		t.Fatal(err)
	}
	if out.ID != "a\"b\\c\x01\u2028é\ufffd" || !out.UpdatedAt.Equal(in.UpdatedAt) || !out.DeletedAt.Equal(in.DeletedAt) || !out.EditedAt.Equal(in.EditedAt) {
		t.Fatalf("round trip: %+v", out)
	}
	if string(out.Data) != `{"x":[1, "}"],"y":{"z":null}}` {
		t.Fatalf("data: %s", out.Data)
	}
	// camelCase and numeric ids from a seed backend.
	out, err = decodeRecord("k", []byte(`{"id":42,"updatedAt":"2026-01-01T00:00:00.5Z","deletedAt":null,"v":1}`), &arena)
	if err != nil || out.ID != "42" || out.UpdatedAt.Nanosecond() != 500000000 || out.Deleted() || string(out.Data) != `{"v":1}` {
		t.Fatalf("seed record: %+v %v", out, err)
	}
}

func TestDecodePageRefusesBadAnswers(t *testing.T) {
	for body, want := range map[string]error{
		`not json`:               core.ErrUnavailable,
		`[]`:                     core.ErrInvalid,
		`{}`:                     core.ErrInvalid,
		`{"items":5}`:            core.ErrInvalid,
		`{"items":[{"id":"a"}]}`: core.ErrInvalid,
		`{"items":[{"updated_at":"2026-01-01T00:00:00Z"}]}`:                  core.ErrInvalid,
		`{"items":[{"id":"a","updated_at":"2026-01-01T00:00:00.0000001Z"}]}`: core.ErrInvalid,
		`{"items":[],"nextPageToken":3}`:                                     core.ErrInvalid,
		`{"items":[],"remaining":-1}`:                                        core.ErrInvalid,
	} {
		if _, err := decodePage("k", []byte(body)); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", body, err, want)
		}
	}
	p, err := decodePage("k", []byte(`{"items":[{"id":"a","updated_at":"2026-01-01T00:00:00Z","x":1},{"id":"b","updated_at":"2026-01-01T00:00:00Z"}],"nextPageToken":null,"remaining":0}`))
	if err != nil || len(p.Records) != 2 || p.NextPageToken != "" || p.Remaining != 0 || string(p.Records[1].Data) != `{}` {
		t.Fatalf("good page: %+v %v", p, err)
	}
}
