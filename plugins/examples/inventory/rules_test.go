package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func conflict(base, local, server string) core.Conflict {
	c := core.Conflict{
		Kind: "item", ID: "x",
		Op:     core.Op{OpID: "op", Kind: "item", ID: "x", Type: core.OpUpsert, Payload: json.RawMessage(local), BaseUpdatedAt: t0},
		Local:  &core.Record{Kind: "item", ID: "x", Data: json.RawMessage(local)},
		Server: &core.Record{Kind: "item", ID: "x", UpdatedAt: t0.Add(time.Second), Data: json.RawMessage(server)},
	}
	if base != "" {
		c.Op.BasePayload = json.RawMessage(base)
		c.Base = &core.Record{Kind: "item", ID: "x", UpdatedAt: t0, Data: json.RawMessage(base)}
	}
	return c
}

var rules = &Rules{Counters: []string{"quantity", "reserved"}}

func TestCountersMergeByDeltas(t *testing.T) {
	res, err := rules.Resolve(context.Background(), conflict(
		`{"name":"A","note":"n","quantity":10,"reserved":1,"tags":["x"]}`,
		`{"name":"A","note":"local note","quantity":7,"reserved":1,"tags":["x","l"]}`,
		`{"name":"B","note":"n","quantity":12,"reserved":4,"tags":["x","s"]}`))
	if err != nil || res.Action != core.ActionAcceptMerged {
		t.Fatalf("%+v, %v", res, err)
	}
	d := res.Data
	if fmt.Sprint(d["quantity"]) != "9" || fmt.Sprint(d["reserved"]) != "4" || d["name"] != "B" ||
		d["note"] != "local note" || fmt.Sprint(d["tags"]) != "[x s l]" {
		t.Fatalf("merged = %v", d)
	}
}

func TestOversellIsRefused(t *testing.T) {
	res, err := rules.Resolve(context.Background(), conflict(`{"quantity":5}`, `{"quantity":2}`, `{"quantity":1}`))
	if err != nil || res.Action != core.ActionAcceptServer {
		t.Fatalf("%+v, %v", res, err)
	}
	// Exactly zero left is fine.
	res, err = rules.Resolve(context.Background(), conflict(`{"quantity":5}`, `{"quantity":4}`, `{"quantity":1}`))
	if err != nil || res.Action != core.ActionAcceptMerged || fmt.Sprint(res.Data["quantity"]) != "0" {
		t.Fatalf("%+v, %v", res, err)
	}
}

func TestUnknownBaseIsDeferred(t *testing.T) {
	res, err := rules.Resolve(context.Background(), conflict("", `{"quantity":2}`, `{"quantity":1}`))
	if err != nil || res.Action != core.ActionDefer {
		t.Fatalf("%+v, %v", res, err)
	}
}

func TestOtherCasesFollowAutoPreserve(t *testing.T) {
	c := conflict(`{"quantity":5}`, `{"quantity":2}`, `{"quantity":1}`)
	c.Server = nil
	if res, err := rules.Resolve(context.Background(), c); err != nil || res.Action != core.ActionAcceptClient {
		t.Fatalf("missing server record: %+v, %v", res, err)
	}
	c = conflict(`{"quantity":5}`, `{"quantity":2}`, `{"quantity":1}`)
	c.Op.Type, c.Local = core.OpDelete, nil
	if res, err := rules.Resolve(context.Background(), c); err != nil || res.Action != core.ActionAcceptServer {
		t.Fatalf("delete: %+v, %v", res, err)
	}
}

func TestBadCounterIsAnError(t *testing.T) {
	for _, local := range []string{`{"quantity":"many"}`, `{"quantity":2.5}`, `{"quantity":9223372036854775807}`} {
		_, err := rules.Resolve(context.Background(), conflict(`{"quantity":-5}`, local, `{"quantity":1}`))
		if !errors.Is(err, core.ErrInvalid) {
			t.Errorf("local %s: err = %v, want ErrInvalid", local, err)
		}
	}
}

func TestBatchKeepsOrder(t *testing.T) {
	cs := []core.Conflict{
		conflict(`{"quantity":5}`, `{"quantity":4}`, `{"quantity":5}`),
		conflict(`{"quantity":5}`, `{"quantity":2}`, `{"quantity":1}`),
		conflict("", `{"quantity":2}`, `{"quantity":1}`),
	}
	res, err := rules.ResolveBatch(context.Background(), cs)
	if err != nil || len(res) != 3 || res[0].Action != core.ActionAcceptMerged ||
		res[1].Action != core.ActionAcceptServer || res[2].Action != core.ActionDefer {
		t.Fatalf("%+v, %v", res, err)
	}
}

func BenchmarkRules(b *testing.B) {
	c := conflict(`{"name":"Item 1","description":"A fine item","quantity":101,"reserved":2,"tags":["a","b"]}`,
		`{"name":"Item 1","description":"A finer item","quantity":98,"reserved":3,"tags":["a","b","c"]}`,
		`{"name":"Item 1 (new)","description":"A fine item","quantity":111,"reserved":2,"tags":["b"]}`)
	b.ReportAllocs()
	for b.Loop() {
		res, err := rules.Resolve(context.Background(), c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(res.Data); err != nil {
			b.Fatal(err)
		}
	}
}
