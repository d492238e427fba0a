package core_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/offsync/offsync/core"
)

// exampleFields decodes a JSON object as core.Record.Fields does.
func exampleFields(s string) map[string]any {
	m, err := core.Record{Data: json.RawMessage(s)}.Fields()
	if err != nil {
		panic(err)
	}
	return m
}

// showJSON prints a map as JSON; encoding/json sorts the keys.
func showJSON(m map[string]any) {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))
}

func ExampleDefaultMerge() {
	local := exampleFields(`{"mood": 5, "tags": ["calm"]}`)
	server := exampleFields(`{"mood": 3, "energy": 7, "tags": ["tired"]}`)
	showJSON(core.DefaultMerge(local, server))
	// Output: {"energy":7,"mood":5,"tags":["calm"]}
}

func ExampleDeepMerge() {
	local := exampleFields(`{"prefs": {"theme": "dark"}, "tags": ["calm"]}`)
	server := exampleFields(`{"prefs": {"lang": "fr"}, "tags": ["tired"]}`)
	showJSON(core.DeepMerge(local, server))
	// Output: {"prefs":{"lang":"fr","theme":"dark"},"tags":["tired","calm"]}
}

// The seed's example: only the fields the user changed overwrite the server.
func ExamplePreservingMerge() {
	local := exampleFields(`{"mood": 5, "notes": "My notes"}`)
	server := exampleFields(`{"mood": 3, "energy": 7, "notes": "Old"}`)
	showJSON(core.PreservingMerge(local, server, []string{"mood", "notes"}))
	// Output: {"energy":7,"mood":5,"notes":"My notes"}
}

// With the base known, a tag the user removed stays removed and a tag another
// writer added stays.
func ExampleThreeWayMerge() {
	base := exampleFields(`{"title": "Buy milk", "tags": ["home", "urgent"], "done": false}`)
	local := exampleFields(`{"title": "Buy oat milk", "tags": ["home"], "done": false}`)
	server := exampleFields(`{"title": "Buy milk", "tags": ["home", "urgent", "shop"], "done": true}`)
	showJSON(core.ThreeWayMerge(base, local, server, nil))
	// Output: {"done":true,"tags":["home","shop"],"title":"Buy oat milk"}
}

// A merge strategy for one kind: the user function sums counters changed on
// both sides and keeps the preserving merge for everything else.
func ExampleMergeWith() {
	sumVisits := core.MergeWith(func(_ context.Context, base, local, server map[string]any) (map[string]any, error) {
		out := core.ThreeWayMerge(base, local, server, nil)
		b, _ := base["visits"].(json.Number).Int64()
		l, _ := local["visits"].(json.Number).Int64()
		s, _ := server["visits"].(json.Number).Int64()
		out["visits"] = s + (l - b)
		return out, nil
	})
	conflicts := core.Conflicts{Kinds: map[string]core.Resolver{"pages": sumVisits}}

	c := core.Conflict{
		Kind: "pages", ID: "home",
		Op:     core.Op{Type: core.OpUpsert},
		Base:   &core.Record{Data: json.RawMessage(`{"visits": 10, "title": "Home"}`)},
		Local:  &core.Record{Data: json.RawMessage(`{"visits": 12, "title": "Home"}`)},
		Server: &core.Record{Data: json.RawMessage(`{"visits": 15, "title": "Welcome"}`)},
	}
	r := conflicts.For("pages")
	res, err := r.Resolve(context.Background(), c)
	if err != nil {
		panic(err)
	}
	fmt.Println(core.StrategyName(r), res.Action)
	showJSON(res.Data)
	// Output:
	// merge accept_merged
	// {"title":"Welcome","visits":17}
}
