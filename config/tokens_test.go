package config_test

import (
	"errors"
	"testing"

	"github.com/offsync/offsync/config"
	"github.com/offsync/offsync/core"
)

func TestParseTokens(t *testing.T) {
	good := map[string]map[string]string{
		"a alice\n# c\n\n  b\tbob  \n": {"a": "alice", "b": "bob"},
		"a alice\nb alice":             {"a": "alice", "b": "alice"},
		` {"a":"alice","b":"bob"} `:    {"a": "alice", "b": "bob"},
	}
	for in, want := range good {
		got, err := config.ParseTokens([]byte(in))
		if err != nil || len(got) != len(want) {
			t.Fatalf("%q: %v %v", in, got, err)
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("%q: %q → %q, want %q", in, k, got[k], v)
			}
		}
	}
	for _, in := range []string{"", "# only a comment\n", "a\n", "a b c\n", "a x\na y\n", `{"a":1}`, `{"a":"x"} {}`, `{}`, `{"":"x"}`, `{"a b":"x"}`, `{"a":""}`} {
		if _, err := config.ParseTokens([]byte(in)); !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("%q: %v, want ErrInvalid", in, err)
		}
	}
}
