package plugins

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
	resolverv1 "github.com/offsync/offsync/plugins/proto/resolver/v1"
	"google.golang.org/protobuf/proto"
)

func TestConflictRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 123456000, time.UTC)
	for _, c := range []core.Conflict{
		{
			Kind: "item", ID: "a", Strategy: "plugin:x", DetectedAt: t0,
			Op: core.Op{OpID: "o1", Kind: "item", ID: "a", Type: core.OpUpsert, Payload: json.RawMessage(`{"q":1}`),
				BaseUpdatedAt: t0, BasePayload: json.RawMessage(`{"q":0}`), ChangedFields: []string{"q"},
				EditedAt: t0, EnqueuedAt: t0, TxID: "tx", SchemaVersion: 2, Attempts: 3, Force: true, State: core.StateInFlight},
			Base:          &core.Record{Kind: "item", ID: "a", UpdatedAt: t0, Data: json.RawMessage(`{"q":0}`)},
			Local:         &core.Record{Kind: "item", ID: "a", UpdatedAt: t0, EditedAt: t0, Data: json.RawMessage(`{"q":1}`)},
			Server:        &core.Record{Kind: "item", ID: "a", UpdatedAt: t0.Add(time.Microsecond), DeletedAt: t0, Data: json.RawMessage(`{"q":2}`)},
			ChangedFields: []string{},
		},
		{ // a delete against a missing record, changed fields unknown
			Kind: "item", ID: "b",
			Op: core.Op{OpID: "o2", Kind: "item", ID: "b", Type: core.OpDelete, State: core.StateInFlight},
		},
	} {
		b, err := proto.Marshal(conflictToProto(&c))
		if err != nil {
			t.Fatal(err)
		}
		var p resolverv1.Conflict
		if err := proto.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		got, err := conflictFromProto(&p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
		}
	}
}

func TestBadConflictsAreRefused(t *testing.T) {
	for name, p := range map[string]*resolverv1.Conflict{
		"nil":          nil,
		"no op":        {Kind: "item", Id: "a"},
		"unknown type": {Kind: "item", Id: "a", Op: &resolverv1.Op{Type: 9}},
	} {
		if _, err := conflictFromProto(p); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

// A plugin's answer is checked before it reaches the engine.
func TestGarbageResolutionsAreRefused(t *testing.T) {
	for name, p := range map[string]*resolverv1.Resolution{
		"nil":              nil,
		"unspecified":      {},
		"unknown action":   {Action: 77},
		"merged, no data":  {Action: resolverv1.Action_ACTION_ACCEPT_MERGED},
		"not JSON":         {Action: resolverv1.Action_ACTION_ACCEPT_MERGED, Data: []byte("{nope")},
		"not an object":    {Action: resolverv1.Action_ACTION_ACCEPT_MERGED, Data: []byte(`[1,2]`)},
		"null":             {Action: resolverv1.Action_ACTION_ACCEPT_MERGED, Data: []byte(`null`)},
		"trailing content": {Action: resolverv1.Action_ACTION_ACCEPT_MERGED, Data: []byte(`{"a":1} {"b":2}`)},
	} {
		if _, err := resolutionFromProto(p); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	res, err := resolutionFromProto(&resolverv1.Resolution{Action: resolverv1.Action_ACTION_ACCEPT_MERGED, Data: []byte(`{"q":9007199254740993}`)})
	if err != nil || res.Data["q"] != json.Number("9007199254740993") {
		t.Fatalf("%+v, %v", res, err)
	}
	for a := core.ActionAcceptServer; a <= core.ActionDiscard; a++ {
		r := core.Resolution{Action: a}
		if a == core.ActionAcceptMerged {
			r.Data = map[string]any{"x": "y"}
		}
		p, err := resolutionToProto(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := resolutionFromProto(p)
		if err != nil || !reflect.DeepEqual(back, r) {
			t.Fatalf("%v: %+v, %v", a, back, err)
		}
	}
}
