package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// obj decodes a JSON object the way Record.Fields does.
func mergeObj(t mergeTB, s string) map[string]any {
	t.Helper()
	if s == "" {
		return nil
	}
	m, err := Record{Data: json.RawMessage(s)}.Fields()
	if err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return m
}

// canon renders v as JSON with sorted keys, so equal values compare equal.
func mergeCanon(t mergeTB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %#v: %v", v, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		t.Fatalf("%v", err)
	}
	b, err = json.Marshal(x)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return string(b)
}

// setCanon is mergeCanon with every list reduced to its distinct items in
// first-seen order: ThreeWayMerge treats lists as sets (DESIGN §6), while a
// list that only one side changed passes through as it was, duplicates
// included, so the properties compare lists as ordered sets.
func setCanon(t mergeTB, v any) string {
	t.Helper()
	var distinct func(v any) any
	distinct = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = distinct(e)
			}
			return out
		case []any:
			seen := map[string]bool{}
			out := []any{}
			for _, e := range x {
				if k := itemKey(e); !seen[k] {
					seen[k] = true
					out = append(out, distinct(e))
				}
			}
			return out
		}
		return v
	}
	var x any
	if err := json.Unmarshal([]byte(mergeCanon(t, v)), &x); err != nil {
		t.Fatalf("%v", err)
	}
	return mergeCanon(t, distinct(x))
}

// noNewCopies fails when a top-level list of got holds an item more times
// than both inputs' lists of that field do.
func noNewCopies(t mergeTB, got, a, b map[string]any) {
	t.Helper()
	count := func(v any) map[string]int {
		n := map[string]int{}
		if l, ok := v.([]any); ok {
			for _, e := range l {
				n[itemKey(e)]++
			}
		}
		return n
	}
	for f, v := range got {
		ca, cb := count(a[f]), count(b[f])
		for k, n := range count(v) {
			if n > max(ca[k], cb[k], 1) {
				t.Fatalf("field %s: item %s appears %d times, the inputs %d and %d", f, k, n, ca[k], cb[k])
			}
		}
	}
}

func wantMergedJSON(t mergeTB, got map[string]any, want string) {
	t.Helper()
	if g, w := mergeCanon(t, got), mergeCanon(t, mergeObj(t, want)); g != w {
		t.Errorf("got  %s\nwant %s", g, w)
	}
}

func TestDefaultMerge(t *testing.T) {
	tests := []struct{ name, local, server, want string }{
		{"local over server", `{"a":1,"b":{"x":1}}`, `{"a":2,"b":{"y":2},"c":3}`, `{"a":1,"b":{"x":1},"c":3}`},
		{"lists replaced", `{"tags":["a"]}`, `{"tags":["b"]}`, `{"tags":["a"]}`},
		{"nil local", ``, `{"a":1}`, `{"a":1}`},
		{"nil server", `{"a":1}`, ``, `{"a":1}`},
		{"both nil", ``, ``, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantMergedJSON(t, DefaultMerge(mergeObj(t, tt.local), mergeObj(t, tt.server)), tt.want)
		})
	}
}

func TestDeepMerge(t *testing.T) {
	tests := []struct{ name, local, server, want string }{
		{"seed example", `{"mood":5,"notes":"My notes"}`, `{"mood":3,"energy":7}`,
			`{"mood":5,"energy":7,"notes":"My notes"}`},
		{"nested objects recurse", `{"p":{"a":1,"n":{"x":1}}}`, `{"p":{"b":2,"n":{"y":2}}}`,
			`{"p":{"a":1,"b":2,"n":{"x":1,"y":2}}}`},
		{"lists unioned, server order first", `{"tags":["c","a","d"]}`, `{"tags":["a","b"]}`,
			`{"tags":["a","b","c","d"]}`},
		{"duplicates dropped", `{"tags":["a","a","b"]}`, `{"tags":["b","b"]}`, `{"tags":["b","a"]}`},
		{"numbers equal by value", `{"n":[1.0,2]}`, `{"n":[1,3]}`, `{"n":[1,3,2]}`},
		{"objects in lists by value", `{"l":[{"x":1},{"x":2}]}`, `{"l":[{"x":1}]}`, `{"l":[{"x":1},{"x":2}]}`},
		{"items with id merged local over server",
			`{"items":[{"id":"1","title":"mine"},{"id":"3","title":"new"}]}`,
			`{"items":[{"id":"1","title":"theirs","done":true},{"id":"2","title":"two"}]}`,
			`{"items":[{"id":"1","title":"mine","done":true},{"id":"2","title":"two"},{"id":"3","title":"new"}]}`},
		{"numeric ids", `{"items":[{"id":1,"v":"l"}]}`, `{"items":[{"id":1.0,"w":"s"}]}`,
			`{"items":[{"id":1,"v":"l","w":"s"}]}`},
		{"type mismatch takes local", `{"a":[1],"b":{"x":1},"c":"s"}`, `{"a":{"x":1},"b":[1],"c":[2]}`,
			`{"a":[1],"b":{"x":1},"c":"s"}`},
		{"null is a scalar", `{"a":null}`, `{"a":{"x":1}}`, `{"a":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantMergedJSON(t, DeepMerge(mergeObj(t, tt.local), mergeObj(t, tt.server)), tt.want)
		})
	}
}

func TestPreservingMerge(t *testing.T) {
	tests := []struct {
		name, local, server string
		changed             []string
		want                string
	}{
		{"seed example", `{"mood":5,"notes":"My notes"}`, `{"mood":3,"energy":7,"notes":"Old"}`,
			[]string{"mood", "notes"}, `{"mood":5,"energy":7,"notes":"My notes"}`},
		{"unchanged local fields keep the server's", `{"mood":5,"energy":1,"notes":"My notes"}`,
			`{"mood":3,"energy":7,"notes":"Old"}`, []string{"mood", "notes"},
			`{"mood":5,"energy":7,"notes":"My notes"}`},
		{"nil changed fields means all local fields", `{"mood":5,"energy":1}`, `{"mood":3,"energy":7,"x":1}`,
			nil, `{"mood":5,"energy":1,"x":1}`},
		{"empty changed fields keeps the server", `{"mood":5}`, `{"mood":3}`, []string{}, `{"mood":3}`},
		{"changed field missing locally is removed", `{"mood":5}`, `{"mood":3,"notes":"x"}`,
			[]string{"mood", "notes"}, `{"mood":5}`},
		{"changed field unknown everywhere", `{}`, `{"a":1}`, []string{"zzz"}, `{"a":1}`},
		{"lists unioned", `{"tags":["a","c"]}`, `{"tags":["a","b"]}`, []string{"tags"}, `{"tags":["a","b","c"]}`},
		{"nested objects deep-merged", `{"p":{"a":1,"l":[1]}}`, `{"p":{"b":2,"l":[2]}}`, []string{"p"},
			`{"p":{"a":1,"b":2,"l":[2,1]}}`},
		{"unchanged list not touched", `{"tags":["a"],"m":1}`, `{"tags":["b"]}`, []string{"m"},
			`{"tags":["b"],"m":1}`},
		{"system fields from the server",
			`{"id":"L","updated_at":"l","deleted_at":"l","edited_at":"l","updatedAt":"l","createdAt":"l","created_at":"l","_meta":"l","deletedAt":"l","editedAt":"l","a":1}`,
			`{"id":"S","updated_at":"s","a":2}`, nil,
			`{"id":"S","updated_at":"s","a":1}`},
		{"system fields ignored when named", `{"id":"L"}`, `{"id":"S"}`, []string{"id"}, `{"id":"S"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantMergedJSON(t, PreservingMerge(mergeObj(t, tt.local), mergeObj(t, tt.server), tt.changed), tt.want)
		})
	}
}

func TestThreeWayMerge(t *testing.T) {
	tests := []struct {
		name, base, local, server string
		changed                   []string
		want                      string
	}{
		{"seed example with a base", `{"mood":3,"notes":"Old"}`, `{"mood":5,"notes":"My notes"}`,
			`{"mood":3,"energy":7,"notes":"Old"}`, []string{"mood", "notes"},
			`{"mood":5,"energy":7,"notes":"My notes"}`},
		{"changed fields found from the base", `{"mood":3,"energy":1}`, `{"mood":5,"energy":1}`,
			`{"mood":3,"energy":7}`, nil, `{"mood":5,"energy":7}`},
		{"changed but equal to base keeps the server's", `{"mood":3}`, `{"mood":3}`, `{"mood":4}`,
			[]string{"mood"}, `{"mood":4}`},
		{"changed fields restrict", `{"a":1,"b":1}`, `{"a":2,"b":2}`, `{"a":3,"b":3}`, []string{"a"},
			`{"a":2,"b":3}`},
		{"field added locally", `{}`, `{"n":"x"}`, `{"m":1}`, nil, `{"m":1,"n":"x"}`},
		{"field deleted locally", `{"a":1,"b":1}`, `{"a":1}`, `{"a":1,"b":2}`, nil, `{"a":1}`},
		{"field deleted locally, named", `{"a":1,"b":1}`, `{"a":1}`, `{"a":1,"b":2}`, []string{"b"}, `{"a":1}`},
		{"deleted locally but not named", `{"a":1,"b":1}`, `{"a":1}`, `{"a":1,"b":2}`, []string{"a"}, `{"a":1,"b":2}`},
		{"field deleted on the server, untouched locally", `{"a":1,"b":1}`, `{"a":1,"b":1}`, `{"a":1}`, nil, `{"a":1}`},
		{"tag removed locally stays removed", `{"tags":["a","b"]}`, `{"tags":["a"]}`, `{"tags":["a","b","c"]}`,
			nil, `{"tags":["a","c"]}`},
		{"tag added on the server stays", `{"tags":["a"]}`, `{"tags":["a","l"]}`, `{"tags":["s","a"]}`,
			[]string{"tags"}, `{"tags":["s","a","l"]}`},
		{"tag removed on the server stays removed", `{"tags":["a","b"]}`, `{"tags":["a","b","c"]}`,
			`{"tags":["b"]}`, nil, `{"tags":["b","c"]}`},
		{"duplicates in the server list dropped", `{"tags":["a"]}`, `{"tags":["a","l","l"]}`, `{"tags":["s","s","a"]}`, nil,
			`{"tags":["s","a","l"]}`},
		{"tag removed on both sides", `{"tags":["a","b"]}`, `{"tags":["a"]}`, `{"tags":["a"]}`, nil, `{"tags":["a"]}`},
		{"tag added on both sides once", `{"tags":[]}`, `{"tags":["x","y"]}`, `{"tags":["y","x"]}`, nil,
			`{"tags":["y","x"]}`},
		{"server unchanged takes the local list, each item once", `{"tags":["a","b"]}`, `{"tags":["b","a","a"]}`,
			`{"tags":["a","b"]}`, nil, `{"tags":["b","a"]}`},
		{"a server that only repeated an item did not change the list", `{"tags":["a","b"]}`, `{"tags":["b","a"]}`,
			`{"tags":["a","b","b"]}`, nil, `{"tags":["b","a"]}`},
		{"items with ids merged by id",
			`{"items":[{"id":"1","title":"t","done":false},{"id":"2","title":"two"},{"id":"3","title":"three"}]}`,
			`{"items":[{"id":"1","title":"mine","done":false},{"id":"3","title":"three"},{"id":"4","title":"four"}]}`,
			`{"items":[{"id":"3","title":"3!"},{"id":"1","title":"t","done":true},{"id":"2","title":"two"}]}`,
			nil,
			`{"items":[{"id":"3","title":"3!"},{"id":"1","title":"mine","done":true},{"id":"4","title":"four"}]}`},
		{"item edited locally but removed on the server",
			`{"items":[{"id":"1","v":1},{"id":"2","v":1}]}`, `{"items":[{"id":"1","v":2},{"id":"2","v":1}]}`,
			`{"items":[{"id":"2","v":1}]}`, nil, `{"items":[{"id":"2","v":1}]}`},
		{"item edited on the server but removed locally",
			`{"items":[{"id":"1","v":1},{"id":"2","v":1}]}`, `{"items":[{"id":"2","v":1},{"id":"3"}]}`,
			`{"items":[{"id":"1","v":5},{"id":"2","v":1}]}`, nil, `{"items":[{"id":"2","v":1},{"id":"3"}]}`},
		{"item added with the same id on both sides", `{"items":[]}`, `{"items":[{"id":7,"a":1}]}`,
			`{"items":[{"id":7,"b":2}]}`, nil, `{"items":[{"id":7,"a":1,"b":2}]}`},
		{"objects without id matched by value", `{"l":[{"x":1},{"x":2}]}`, `{"l":[{"x":2},{"x":3}]}`,
			`{"l":[{"x":1},{"x":2},{"x":4}]}`, nil, `{"l":[{"x":2},{"x":4},{"x":3}]}`},
		{"nested objects merge three-way",
			`{"p":{"a":1,"b":1,"c":1,"q":{"x":1,"y":1}}}`,
			`{"p":{"a":2,"b":1,"q":{"x":2,"y":1},"n":1}}`,
			`{"p":{"a":1,"b":3,"c":1,"q":{"x":1,"y":3},"s":1}}`,
			[]string{"p"},
			`{"p":{"a":2,"b":3,"q":{"x":2,"y":3},"n":1,"s":1}}`},
		{"nested object added on both sides", `{}`, `{"p":{"a":1,"t":["x"]}}`, `{"p":{"b":2,"t":["y"]}}`, nil,
			`{"p":{"a":1,"b":2,"t":["y","x"]}}`},
		{"list in local against a scalar on the server", `{"a":1}`, `{"a":[1]}`, `{"a":2}`, nil, `{"a":[1]}`},
		{"numbers compare by value", `{"n":1}`, `{"n":1.0}`, `{"n":2}`, nil, `{"n":2}`},
		{"system fields from the server", `{"id":"B","a":1}`, `{"id":"L","updated_at":"l","a":2}`,
			`{"id":"S","a":1}`, nil, `{"id":"S","a":2}`},
		{"nil base is PreservingMerge", ``, `{"tags":["a"],"m":5}`, `{"tags":["b"],"m":3,"e":7}`, nil,
			`{"tags":["b","a"],"m":5,"e":7}`},
		{"nil base, changed field missing locally removed", ``, `{"m":5}`, `{"m":3,"n":1}`, []string{"m", "n"},
			`{"m":5}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantMergedJSON(t, ThreeWayMerge(mergeObj(t, tt.base), mergeObj(t, tt.local), mergeObj(t, tt.server), tt.changed), tt.want)
		})
	}
}

func TestMergeHelpersDoNotMutateInputs(t *testing.T) {
	base := `{"a":1,"tags":["a","b"],"p":{"x":1,"l":[{"id":"1","v":1}]},"items":[{"id":"1","v":1}]}`
	local := `{"a":2,"tags":["a","c"],"p":{"x":2,"l":[{"id":"1","v":2}]},"items":[{"id":"1","v":2},{"id":"2"}]}`
	server := `{"a":3,"tags":["b","d"],"p":{"y":1,"l":[{"id":"1","w":1}]},"items":[{"id":"1","w":3}],"s":1}`
	helpers := map[string]func(b, l, s map[string]any) map[string]any{
		"DefaultMerge":    func(_, l, s map[string]any) map[string]any { return DefaultMerge(l, s) },
		"DeepMerge":       func(_, l, s map[string]any) map[string]any { return DeepMerge(l, s) },
		"PreservingMerge": func(_, l, s map[string]any) map[string]any { return PreservingMerge(l, s, nil) },
		"ThreeWayMerge":   func(b, l, s map[string]any) map[string]any { return ThreeWayMerge(b, l, s, nil) },
	}
	for name, merge := range helpers {
		t.Run(name, func(t *testing.T) {
			b, l, s := mergeObj(t, base), mergeObj(t, local), mergeObj(t, server)
			out := merge(b, l, s)
			for _, in := range []struct {
				m    map[string]any
				want string
			}{{b, base}, {l, local}, {s, server}} {
				if got, want := mergeCanon(t, in.m), mergeCanon(t, mergeObj(t, in.want)); got != want {
					t.Fatalf("input changed:\n got %s\nwant %s", got, want)
				}
			}
			// The result shares nothing with the inputs.
			scribbleAll(out)
			for _, in := range []struct {
				m    map[string]any
				want string
			}{{b, base}, {l, local}, {s, server}} {
				if got, want := mergeCanon(t, in.m), mergeCanon(t, mergeObj(t, in.want)); got != want {
					t.Fatalf("input changed through the result:\n got %s\nwant %s", got, want)
				}
			}
		})
	}
}

// scribbleAll overwrites everything reachable from v.
func scribbleAll(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			scribbleAll(e)
			x[k] = "scribbled"
		}
		x["new"] = true
	case []any:
		for i, e := range x {
			scribbleAll(e)
			x[i] = "scribbled"
		}
	}
}

func TestMergeIsDeterministic(t *testing.T) {
	base := mergeObj(t, `{"tags":["a","b","c"],"items":[{"id":"1"},{"id":"2"}],"p":{"q":{"x":1}}}`)
	local := mergeObj(t, `{"tags":["c","z","y","a"],"items":[{"id":"3"},{"id":"1","v":1},{"id":"5"}],"p":{"q":{"x":2}},"k":[3,2,1]}`)
	server := mergeObj(t, `{"tags":["w","c","b","v"],"items":[{"id":"4"},{"id":"2"},{"id":"1","w":1}],"p":{"q":{"y":1}},"k":[9]}`)
	first := mergeCanon(t, ThreeWayMerge(base, local, server, nil))
	firstDeep := mergeCanon(t, DeepMerge(local, server))
	for range 50 {
		if got := mergeCanon(t, ThreeWayMerge(base, local, server, nil)); got != first {
			t.Fatalf("ThreeWayMerge not deterministic:\n%s\n%s", got, first)
		}
		if got := mergeCanon(t, DeepMerge(local, server)); got != firstDeep {
			t.Fatalf("DeepMerge not deterministic:\n%s\n%s", got, firstDeep)
		}
	}
	want := `{"items":[{"id":"4"},{"id":"1","v":1,"w":1},{"id":"3"},{"id":"5"}],"k":[9,3,2,1],"p":{"q":{"x":2,"y":1}},"tags":["w","c","v","z","y"]}`
	if first != want {
		t.Errorf("got  %s\nwant %s", first, want)
	}
}

func TestMergeGoValues(t *testing.T) {
	// Maps built by hand with Go types merge like decoded JSON.
	local := map[string]any{"tags": []string{"a", "c"}, "n": 5, "p": map[string]int{"x": 1}}
	server := map[string]any{"tags": []any{"a", "b"}, "n": json.Number("3"), "p": map[string]any{"y": json.Number("2")}}
	wantMergedJSON(t, DeepMerge(local, server), `{"tags":["a","b","c"],"n":5,"p":{"x":1,"y":2}}`)
	base := map[string]any{"tags": []any{"a", "b"}, "n": json.Number("5.0")}
	wantMergedJSON(t, ThreeWayMerge(base, local, server, nil), `{"tags":["a","c"],"n":3,"p":{"x":1,"y":2}}`)
}

// --- properties of ThreeWayMerge ---

var mergePropKeys = []string{"a", "b", "c", "d", "e"}

func genJSONScalar() *rapid.Generator[any] {
	return rapid.OneOf(
		rapid.Map(rapid.SampledFrom([]string{"x", "y", "z"}), func(s string) any { return s }),
		rapid.Map(rapid.IntRange(0, 3), func(n int) any { return json.Number(fmt.Sprint(n)) }),
		rapid.Map(rapid.Bool(), func(b bool) any { return b }),
		rapid.Just[any](nil),
	)
}

func genJSONValue(depth int) *rapid.Generator[any] {
	if depth == 0 {
		return genJSONScalar()
	}
	item := rapid.OneOf(
		genJSONScalar(),
		rapid.Custom(func(t *rapid.T) any { // an object with an id
			m := genJSONObject(depth-1).Draw(t, "item")
			m["id"] = json.Number(fmt.Sprint(rapid.IntRange(1, 4).Draw(t, "id")))
			return m
		}),
	)
	return rapid.OneOf(
		genJSONScalar(),
		rapid.Map(rapid.SliceOfN(item, 0, 5), func(l []any) any { return l }),
		rapid.Map(genJSONObject(depth-1), func(m map[string]any) any { return m }),
	)
}

func genJSONObject(depth int) *rapid.Generator[map[string]any] {
	return rapid.Custom(func(t *rapid.T) map[string]any {
		m := map[string]any{}
		for _, k := range mergePropKeys {
			if rapid.IntRange(0, 2).Draw(t, "has "+k) > 0 {
				m[k] = genJSONValue(depth).Draw(t, k)
			}
		}
		return m
	})
}

// genJSONEdit changes some fields of m: sets, deletes, and edits inside lists and
// objects, so edits are close to the base as real edits are.
func genJSONEdit(t *rapid.T, m map[string]any, label string) map[string]any {
	out := plainMap(m)
	for _, k := range mergePropKeys {
		switch rapid.IntRange(0, 5).Draw(t, label+" op "+k) {
		case 0:
			out[k] = genJSONValue(1).Draw(t, label+" set "+k)
		case 1:
			delete(out, k)
		case 2:
			switch v := out[k].(type) {
			case []any:
				if len(v) > 0 && rapid.Bool().Draw(t, label+" drop "+k) {
					i := rapid.IntRange(0, len(v)-1).Draw(t, label+" drop at "+k)
					v = slices.Delete(slices.Clone(v), i, i+1)
				}
				out[k] = append(v, genJSONValue(0).Draw(t, label+" add "+k))
			case map[string]any:
				out[k] = genJSONEdit(t, v, label+"/"+k)
			}
		}
	}
	return out
}

// genChangedFields is nil (unknown) or a subset of the keys, possibly empty.
func genChangedFields(t *rapid.T, label string) []string {
	if rapid.Bool().Draw(t, label+" unknown") {
		return nil
	}
	cs := []string{}
	for _, k := range mergePropKeys {
		if rapid.Bool().Draw(t, label+" "+k) {
			cs = append(cs, k)
		}
	}
	return cs
}

func TestThreeWayMergeProperties(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		base := genJSONObject(2).Draw(rt, "base")
		local := genJSONEdit(rt, base, "local")
		server := genJSONEdit(rt, base, "server")
		changed := genChangedFields(rt, "changed")
		check := func(what string, got, want map[string]any) {
			if g, w := setCanon(rt, got), setCanon(rt, want); g != w {
				rt.Fatalf("%s:\nbase   %s\nlocal  %s\nserver %s\nchanged %v\ngot    %s\nwant   %s",
					what, mergeCanon(rt, base), mergeCanon(rt, local), mergeCanon(rt, server), changed, g, w)
			}
		}

		// No local change: the server's version.
		check("local == base", ThreeWayMerge(base, base, server, changed), server)

		// No server change: the local version of the changed fields.
		want := plainMap(base)
		for _, k := range fieldsToApply(unionOfFields(base, local), changed) {
			if v, ok := local[k]; ok {
				want[k] = v
			} else {
				delete(want, k)
			}
		}
		check("server == base", ThreeWayMerge(base, local, base, changed), want)

		// Applying the same change again changes nothing.
		merged := ThreeWayMerge(base, local, server, changed)
		again := ThreeWayMerge(base, local, merged, changed)
		check("idempotent", again, merged)
		// Lists are sets: a merge never adds copies of an item.
		noNewCopies(rt, merged, local, server)
		noNewCopies(rt, again, local, merged)

		// Both sides made the same edit: that edit.
		if changed == nil {
			check("local == server", ThreeWayMerge(base, local, local, nil), local)
		}
	})
}

func unionOfFields(a, b map[string]any) map[string]any {
	m := plainMap(a)
	for k, v := range b {
		m[k] = v
	}
	return m
}

// mergeTB is what the helpers need of *testing.T and *rapid.T.
type mergeTB interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

func TestMergeValueKinds(t *testing.T) {
	// Every Go number kind equals the json.Number of the same value.
	for _, n := range []any{int(2), int8(2), int16(2), int32(2), int64(2), uint(2), uint8(2), uint16(2),
		uint32(2), uint64(2), float32(2), float64(2), json.Number("2"), json.Number("2.0"), json.Number("20e-1")} {
		got := ThreeWayMerge(map[string]any{"n": json.Number("1")}, map[string]any{"n": n},
			map[string]any{"n": json.Number("2")}, nil)
		if !equalValues(got["n"], json.Number("2")) {
			t.Errorf("%T %v: got %#v", n, n, got["n"])
		}
		u := DeepMerge(map[string]any{"l": []any{n}}, map[string]any{"l": []any{json.Number("2")}})
		if l := u["l"].([]any); len(l) != 1 {
			t.Errorf("%T %v: union %v", n, n, l)
		}
	}
	// Values that are not numbers never equal numbers.
	for _, v := range []any{json.Number("x"), math.NaN(), math.Inf(1), "2", true, nil} {
		if equalValues(v, json.Number("2")) || equalValues(json.Number("2"), v) {
			t.Errorf("%#v equals 2", v)
		}
	}
	// Scalars of every kind, as list items, are matched by value.
	l := []any{true, false, nil, "s", json.Number("1"), map[string]any{"id": nil}, map[string]any{"id": []any{1}}}
	got := DeepMerge(map[string]any{"l": l}, map[string]any{"l": slices.Clone(l)})
	if g := got["l"].([]any); len(g) != len(l) {
		t.Errorf("union of equal lists: %v", g)
	}
	// A value encoding/json cannot handle is an opaque scalar.
	ch := make(chan int)
	got = DeepMerge(map[string]any{"c": ch, "l": []any{ch}}, map[string]any{"c": 1, "l": []any{ch}})
	if got["c"] != ch || len(got["l"].([]any)) != 1 {
		t.Errorf("opaque values: %#v", got)
	}
	if equalValues(ch, make(chan int)) || !equalValues(ch, ch) {
		t.Error("opaque values compare by identity")
	}
}
