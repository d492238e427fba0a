package rest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

// The wire decoders on the bench's data set: a pull page of 500 records of
// about 215 bytes of business data (decodePage) and a POST /batch of 500
// upserts (readBatch), both one pass of jsontext since issue 20 (before:
// json.Valid, then a hand-written walk; docs/benchmarks.md has both).
//
//	go test ./drivers/transport/rest -run '^$' -bench 'DecodePage|DecodeBatchOps' -benchtime 500x -count 3

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

// BenchmarkDecodeBatchOps: a 500-op POST /batch body, as the server reads
// its envelope and ops (readBatch: jsontext), before the per-op checks.
func BenchmarkDecodeBatchOps(b *testing.B) {
	body := benchBatchBody(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, _, _, err := readBatch(body, 1000); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "ops/s")
}
