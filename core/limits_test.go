package core_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/offsync/offsync/core"
)

func nested(depth int) string {
	// depth levels in all: the payload object and depth-1 arrays inside it.
	return `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
}

func TestCheckPayload(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		ok         bool
	}{
		{"flat", `{"a":1,"b":"x","c":null,"d":true,"e":false,"f":-1.5e+3}`, true},
		{"spaces", " \n{ \"a\" : [ 1 , {\"b\":[]} ] }\t", true},
		{"empty object", `{}`, true},
		{"escapes", `{"a":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`, true},
		{"same key in two objects", `{"a":{"x":1},"b":{"x":2}}`, true},
		{"depth 64", nested(64), true},
		{"depth 65", nested(65), false},
		{"depth 1000", nested(1000), false},
		{"duplicate top-level key", `{"a":1,"a":2}`, false},
		{"duplicate nested key", `{"a":{"x":1,"x":2}}`, false},
		{"duplicate nested key, escaped", `{"a":[{"x":1,"\u0078":2}]}`, false},
		{"duplicate key past the set threshold", `{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":0,"k11":1,"k12":2,"k13":3,"k14":4,"k15":5,"k16":6,"k17":7,"k3":8}`, false},
		{"NUL escape in a value", `{"a":"x\u0000y"}`, false},
		{"NUL escape in a key", `{"a\u0000":1}`, false},
		{"raw control character", "{\"a\":\"x\x01\"}", false},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", false},
		{"lone high surrogate", `{"a":"\ud800"}`, false},
		{"lone low surrogate", `{"a":"\udc00x"}`, false},
		{"high surrogate then a letter", `{"a":"\ud800\u0041"}`, false},
		{"reserved name", `{"id":"x"}`, false},
		{"underscore name", `{"_x":1}`, false},
		{"reserved name nested is fine", `{"a":{"id":"x","_y":1}}`, true},
		{"array", `[1]`, false},
		{"string", `"x"`, false},
		{"two objects", `{}{}`, false},
		{"trailing comma", `{"a":1,}`, false},
		{"leading zero", `{"a":01}`, false},
		{"bare dot", `{"a":1.}`, false},
		{"bad literal", `{"a":tru}`, false},
		{"unterminated", `{"a":"x`, false},
		{"empty", ``, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := core.CheckPayload([]byte(tc.data), 0)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok {
				if err == nil {
					t.Fatalf("accepted %q", tc.data)
				}
				if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrReservedField) {
					t.Fatalf("error %v wraps neither ErrInvalid nor ErrReservedField", err)
				}
			}
		})
	}
	if err := core.CheckPayload([]byte(nested(65)), 100); err != nil {
		t.Errorf("depth 65 with a limit of 100: %v", err)
	}
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"a", "日本", strings.Repeat("x", core.MaxIDBytes), "a b/c"} {
		if err := core.CheckID(id); err != nil {
			t.Errorf("CheckID(%q): %v", id, err)
		}
	}
	for _, id := range []string{"", strings.Repeat("x", core.MaxIDBytes+1), "a\x00b", "\xff"} {
		if err := core.CheckID(id); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("CheckID(%q) = %v, want ErrInvalid", id, err)
		}
	}
}

func TestCheckKindLength(t *testing.T) {
	if err := core.CheckKind(strings.Repeat("k", core.MaxKindBytes)); err != nil {
		t.Errorf("a kind of %d bytes: %v", core.MaxKindBytes, err)
	}
	if err := core.CheckKind(strings.Repeat("k", core.MaxKindBytes+1)); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("a kind of %d bytes: %v, want ErrInvalid", core.MaxKindBytes+1, err)
	}
}

// FuzzCheckPayload: what CheckPayload accepts, encoding/json reads as an
// object with the same keys (no duplicate was hidden), and re-encoding it
// is accepted again.
func FuzzCheckPayload(f *testing.F) {
	f.Add([]byte(`{"a":[1,{"b":"\u00e9"}],"c":null}`))
	f.Add([]byte(`{"a":{"x":1,"\u0078":2}}`))
	f.Add([]byte(nested(65)))
	f.Add([]byte(`{"a":"\ud83d\ude00"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := core.CheckPayload(data, 8); err != nil {
			if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrReservedField) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil || m == nil {
			t.Fatalf("accepted %q, which is not an object: %v", data, err)
		}
		if err := core.CheckData(data); err != nil {
			t.Fatalf("accepted %q, which CheckData refuses: %v", data, err)
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(data))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := core.CheckPayload(again, 8); err != nil {
			t.Fatalf("%q accepted, its re-encoding %q refused: %v", data, again, err)
		}
	})
}

func ExampleCheckPayload() {
	fmt.Println(core.CheckPayload([]byte(`{"title":"milk","tags":["a","b"]}`), 0))
	fmt.Println(errors.Is(core.CheckPayload([]byte(`{"a":{"k":1,"k":2}}`), 0), core.ErrInvalid))
	deep := `{"a":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`
	fmt.Println(core.CheckPayload([]byte(deep), 0))
	// Output:
	// <nil>
	// true
	// offsync: invalid input: data is nested deeper than 64 levels
}

func ExampleCheckID() {
	fmt.Println(core.CheckID("todo-1"))
	fmt.Println(core.CheckID("a\x00b"))
	// Output:
	// <nil>
	// offsync: invalid input: a record id may not contain NUL
}
