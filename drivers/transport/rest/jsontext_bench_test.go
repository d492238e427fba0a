package rest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/offsync/offsync/core"
)

// The wire decoders on the bench's data set: a pull page of 500 records of
// about 215 bytes of business data (decodePage, over jsontext since issue
// 20), and a POST /batch of 500 upserts, read by the hand-written walker
// (walkBatch after json.Valid) and, beside it, by the same reading done
// with jsontext's Decoder (decodeBatchText: it validates as it reads, so
// it replaces both passes). decodeBatchText decodes the same ops (the test
// below holds it to that) and stops there: it exists to be measured.
//
//	go test ./drivers/transport/rest -run JSONText -bench 'DecodePage|DecodeBatchOps' -benchtime 500x -count 3

func benchPageBody(tb testing.TB) []byte {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var b []byte
	b = append(b, `{"items":[`...)
	for i := range 500 {
		if i > 0 {
			b = append(b, ',')
		}
		data := fmt.Sprintf(`{"title":"Item number %d of the benchmark data set","body":%q,"count":%d,"done":%v}`,
			i, strings.Repeat("lorem ipsum dolor sit amet ", 5)[:120], i, i%2 == 0)
		rec := core.Record{Kind: "item", ID: fmt.Sprintf("item-%08d", i), UpdatedAt: base.Add(time.Duration(i) * time.Microsecond),
			Data: []byte(data)}
		b = appendRecord(b, &rec)
	}
	b = append(b, `],"nextPageToken":"tok","remaining":1000}`...)
	return b
}

func benchBatchBody(tb testing.TB) []byte {
	var b []byte
	b = append(b, `{"ops":[`...)
	for i := range 500 {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `{"opId":"%032x","kind":"item","id":"item-%08d","type":"upsert","payload":{"id":"item-%08d","title":"Item number %d of the benchmark data set","body":%q,"count":%d,"done":%v}}`,
			i, i, i, i, strings.Repeat("lorem ipsum dolor sit amet ", 5)[:120], i, i%2 == 0)
	}
	return append(b, `]}`...)
}

// decodeBatchText reads a POST /batch body's ops with jsontext into the
// same wireOps walkBatch makes (the checks after it are shared).
func decodeBatchText(body []byte) ([]wireOp, error) {
	dec := jsontext.NewDecoder(bytes.NewBuffer(body))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, fmt.Errorf("%w: not an object", core.ErrInvalid)
	}
	var ops []wireOp
	for dec.PeekKind() != '}' {
		key, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		if string(key) != `"ops"` {
			return nil, errStdDecode
		}
		if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '[' {
			return nil, errStdDecode
		}
		ops = make([]wireOp, 0, 500)
		for dec.PeekKind() != ']' {
			if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
				return nil, errStdDecode
			}
			var op wireOp
			for dec.PeekKind() != '}' {
				key, err := dec.ReadValue()
				if err != nil {
					return nil, err
				}
				f := opField(key)
				if f == opPayload {
					v, err := dec.ReadValue()
					if err != nil {
						return nil, err
					}
					op.payload = v.Clone()
					continue
				}
				tok, err := dec.ReadToken()
				if err != nil {
					return nil, err
				}
				switch f {
				case opOpID:
					op.opID = tok.String()
				case opKind:
					op.kind = tok.String()
				case opID:
					op.id = tok.String()
				case opType:
					op.typ = tok.String()
				case opBase:
					op.base = tok.String()
				case opEdited:
					op.edited = tok.String()
				case opForce:
					op.force = tok.Bool()
				default:
					return nil, errStdDecode
				}
			}
			if _, err := dec.ReadToken(); err != nil {
				return nil, err
			}
			ops = append(ops, op)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

func TestJSONTextVariantsDecodeTheSame(t *testing.T) {
	batch := benchBatchBody(t)
	ops, _, _, err := walkBatch(batch, 1000)
	if err != nil {
		t.Fatal(err)
	}
	ops2, err := decodeBatchText(batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != len(ops2) {
		t.Fatalf("%d ops vs %d", len(ops), len(ops2))
	}
	for i := range ops {
		x, y := ops[i], ops2[i]
		if x.opID != y.opID || x.kind != y.kind || x.id != y.id || x.typ != y.typ || !bytes.Equal(x.payload, y.payload) {
			t.Fatalf("op %d: %+v vs %+v", i, x, y)
		}
	}
}

// BenchmarkDecodePage: a 500-record pull page, as the client decodes it
// (decodePage: jsontext, through jsonscan.ReadRecord).
func BenchmarkDecodePage(b *testing.B) {
	body := benchPageBody(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := decodePage("item", body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "rec/s")
}

// BenchmarkDecodeBatchOps: a 500-op POST /batch body, as the server reads its
// envelope and ops (before the per-op checks, which are shared).
func BenchmarkDecodeBatchOps(b *testing.B) {
	body := benchBatchBody(b)
	b.Run("scanner", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
			if _, _, _, err := walkBatch(body, 1000); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("jsontext", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := decodeBatchText(body); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "ops/s")
	})
}
