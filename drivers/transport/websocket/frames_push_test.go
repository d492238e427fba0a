package websocket

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"pgregory.net/rapid"
)

// The push path's hand-written frames say what encoding/json says for the
// same frame: decoded, they are the same value (encoding/json's bytes may
// differ only by its HTML escapes inside strings). The references below
// are the encoding/json forms the frames had before.

// refResult is a result as encoding/json wrote it.
func refResult(op *core.Op, pr *core.PushResult) (wireResult, error) {
	w := wireResult{OpID: op.OpID, Status: wire.ResultStatus(pr.Status), Error: wire.ResultCode(pr.Status)}
	var err error
	switch pr.Status {
	case core.StatusApplied:
		if pr.Record == nil {
			return w, errors.New("no record")
		}
		w.Record, err = encodeRecord(pr.Record)
	case core.StatusConflict:
		if pr.Record != nil {
			w.Current, err = encodeRecord(pr.Record)
		}
	case core.StatusRejected:
		w.Message = pr.Reason
		if !pr.Permanent {
			f := false
			w.Permanent = &f
		}
	case core.StatusRetry:
		w.Message = pr.Reason
		w.RetryAfter = pr.RetryAfter.Seconds()
	}
	return w, err
}

func sameFrameJSON(t *rapid.T, what string, got, want []byte) {
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: invalid JSON %s: %v", what, got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: reference %s: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// text draws strings with the bytes JSON escapes (quotes, backslashes,
// control bytes, HTML's <>&, invalid UTF-8) among plain ones.
func text(t *rapid.T, label string) string {
	return rapid.OneOf(rapid.StringMatching(`[a-z0-9-]{1,10}`), rapid.String(),
		rapid.Map(rapid.SliceOf(rapid.Byte()), func(b []byte) string { return string(b) })).Draw(t, label)
}

func TestAppendResultsMatchesEncodingJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 5).Draw(t, "n")
		ops := make([]core.Op, n)
		res := make([]core.PushResult, n)
		base := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
		for i := range n {
			ops[i] = core.Op{OpID: text(t, "opid"), Kind: "k", ID: text(t, "id")}
			st := core.PushStatus(rapid.IntRange(1, 6).Draw(t, "status"))
			pr := core.PushResult{OpID: ops[i].OpID, Status: st, Reason: text(t, "reason"),
				Permanent:  rapid.Bool().Draw(t, "permanent"),
				RetryAfter: time.Duration(rapid.Int64Range(0, 1e11).Draw(t, "after"))}
			if st == core.StatusApplied || (st == core.StatusConflict && rapid.Bool().Draw(t, "current")) {
				data, _ := json.Marshal(map[string]any{"title": text(t, "title"), "n": i})
				rec := core.Record{Kind: "k", ID: ops[i].ID, UpdatedAt: base.Add(time.Duration(i) * time.Microsecond), Data: data}
				if rapid.Bool().Draw(t, "deleted") {
					rec.DeletedAt = rec.UpdatedAt
				}
				pr.Record = &rec
			}
			res[i] = pr
		}
		got, err := appendResults(nil, 42, ops, res)
		if err != nil {
			t.Fatal(err)
		}
		ref := struct {
			T       string       `json:"t"`
			ID      int64        `json:"id"`
			Results []wireResult `json:"results"`
		}{tResults, 42, make([]wireResult, n)}
		for i := range n {
			if ref.Results[i], err = refResult(&ops[i], &res[i]); err != nil {
				t.Fatal(err)
			}
		}
		want, _ := json.Marshal(ref)
		sameFrameJSON(t, "results", got, want)
	})
}

func TestAppendPushFrameMatchesEncodingJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 5).Draw(t, "n")
		f := clientFrame{T: tPush, Traceparent: rapid.SampledFrom([]string{"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}).Draw(t, "tp")}
		id := rapid.Int64Range(1, 1<<53).Draw(t, "id")
		f.ID = &id
		for range n {
			op := core.Op{OpID: text(t, "opid"), Kind: text(t, "kind"), ID: text(t, "rid"),
				Type:  core.OpType(rapid.SampledFrom([]string{"upsert", "delete"}).Draw(t, "type")),
				Force: rapid.Bool().Draw(t, "force")}
			if rapid.Bool().Draw(t, "base") {
				op.BaseUpdatedAt = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
			}
			if rapid.Bool().Draw(t, "edited") {
				op.EditedAt = time.Date(2026, 1, 2, 3, 4, 5, 7000, time.UTC)
			}
			if op.Type == core.OpUpsert {
				op.Payload, _ = json.Marshal(map[string]any{"title": text(t, "title"), "tags": []string{text(t, "tag")}})
			}
			f.Ops = append(f.Ops, encodeOp(&op))
		}
		got := appendPushFrame(nil, id, f.Ops, f.Traceparent)
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		sameFrameJSON(t, "push frame", got, want)
		// And the server reads it as it read encoding/json's.
		pf, pid, code, err := parseFrame(got)
		if err != nil || code != 0 || pid != id || len(pf.Ops) != n {
			t.Fatalf("parseFrame: id %d, %d ops, code %d, %v", pid, len(pf.Ops), code, err)
		}
	})
}

// decodePage reads every page appendPage writes as the encoding/json path
// (inFrame, then decodeRecord per item) reads it; pageFrameID finds its id.
func TestDecodePageMatchesEncodingJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 6).Draw(t, "n")
		page := core.Page{NextPageToken: rapid.SampledFrom([]string{"", "tok-1", "a\"b\\c<d>"}).Draw(t, "token"),
			Remaining: rapid.Int64Range(-1, 1000).Draw(t, "remaining")}
		base := time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)
		for i := range n {
			data, _ := json.Marshal(map[string]any{"title": text(t, "title"), "n": i, "nested": map[string]any{"a": []any{1, "x}", nil}}})
			rec := core.Record{Kind: "k", ID: text(t, "id"), UpdatedAt: base.Add(time.Duration(i) * time.Microsecond), Data: data}
			if rec.ID == "" {
				rec.ID = "x"
			}
			if rapid.Bool().Draw(t, "deleted") {
				rec.DeletedAt = rec.UpdatedAt
			}
			if rapid.Bool().Draw(t, "edited") {
				rec.EditedAt = base
			}
			page.Records = append(page.Records, rec)
		}
		id := rapid.Int64Range(1, 1<<53).Draw(t, "id")
		b, err := appendPage(nil, id, &page)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := pageFrameID(b); !ok || got != id {
			t.Fatalf("pageFrameID = %d, %v; want %d", got, ok, id)
		}
		got, err := decodePage("k", b, 0)
		if err != nil {
			t.Fatalf("decodePage: %v\n%s", err, b)
		}
		var f inFrame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		want := core.Page{Remaining: -1}
		if f.NextPageToken != nil {
			want.NextPageToken = *f.NextPageToken
		}
		if f.Remaining != nil && *f.Remaining >= 0 {
			want.Remaining = *f.Remaining
		}
		for _, it := range f.Items {
			rec, err := decodeRecord("k", it)
			if err != nil {
				t.Fatal(err)
			}
			want.Records = append(want.Records, rec)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodePage:\n got %+v\nwant %+v", got, want)
		}
	})
}

// A page frame that is not JSON, or not a page, is refused, not guessed.
func TestDecodePageRefusesBrokenFrames(t *testing.T) {
	for _, b := range []string{
		`{"t":"page","id":1,"items":[{"id":"a","updated_at":"2026-01-02T03:04:05.000000Z","deleted_at":null}`,
		`{"t":"page","id":1,"items":[{"id":"a",}]}`,
		`{"t":"page","id":1,"items":{}}`,
		`{"t":"page","id":1,"items":[],"nextPageToken":3}`,
		`{"t":"page","id":1,"items":[]} x`,
	} {
		if _, err := decodePage("k", []byte(b), 0); !errors.Is(err, core.ErrUnavailable) && !errors.Is(err, core.ErrInvalid) {
			t.Errorf("decodePage(%s) = %v, want an error", b, err)
		}
	}
	for _, b := range []string{`{"t":"page","id":x,`, `{"t":"results","id":1,`, `{"t":"page","id":,`} {
		if _, ok := pageFrameID([]byte(b)); ok {
			t.Errorf("pageFrameID(%s) took it", b)
		}
	}
}

// parsePushFrame reads every push frame it takes as encoding/json reads it,
// and takes the frames clients write (by hand or with encoding/json).
func TestParsePushFrameMatchesEncodingJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := clientFrame{T: tPush, Traceparent: rapid.SampledFrom([]string{"", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}).Draw(t, "tp")}
		id := rapid.Int64Range(-3, 1<<53).Draw(t, "id")
		f.ID = &id
		for range rapid.IntRange(0, 4).Draw(t, "n") {
			op := core.Op{OpID: text(t, "opid"), Kind: text(t, "kind"), ID: text(t, "rid"),
				Type:  core.OpType(rapid.SampledFrom([]string{"upsert", "delete", "x"}).Draw(t, "type")),
				Force: rapid.Bool().Draw(t, "force")}
			if rapid.Bool().Draw(t, "base") {
				op.BaseUpdatedAt = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
			}
			if op.Type == core.OpUpsert {
				op.Payload = []byte(rapid.SampledFrom([]string{`{"a":1}`, `{ "a" : [1, {"b":"}"}] }`, `null`, `[1]`, `{"\u00e9":"\ud83d\ude00"}`}).Draw(t, "payload"))
			}
			f.Ops = append(f.Ops, encodeOp(&op))
		}
		frames := [][]byte{appendPushFrame(nil, id, f.Ops, f.Traceparent)}
		if b, err := json.Marshal(f); err == nil {
			frames = append(frames, b)
		}
		// A frame cut short, or with a member renamed, is not taken.
		whole := frames[0]
		frames = append(frames, whole[:rapid.IntRange(0, len(whole)).Draw(t, "cut")])
		for _, b := range frames {
			got, ok := parsePushFrame(b)
			var want clientFrame
			err := json.Unmarshal(b, &want)
			if !ok {
				if len(b) == len(whole) && string(b) == string(whole) && utf8.Valid(b) {
					t.Fatalf("a client's frame was not taken: %s", b)
				}
				continue
			}
			if err != nil {
				t.Fatalf("taken, but encoding/json refuses it (%v): %s", err, b)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s:\n got %+v\nwant %+v", b, got, want)
			}
		}
	})
}
