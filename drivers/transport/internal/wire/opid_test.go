package wire

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/offsync/offsync/core"
)

func TestCheckOpID(t *testing.T) {
	for _, ok := range []string{"a", "op-1", strings.Repeat("x", MaxOpIDBytes), "~!{}"} {
		if err := CheckOpID(ok); err != nil {
			t.Errorf("CheckOpID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "é", "a\x00", strings.Repeat("x", MaxOpIDBytes+1)} {
		if err := CheckOpID(bad); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("CheckOpID(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestOptionDuration(t *testing.T) {
	for v, want := range map[any]time.Duration{"1.5s": 1500 * time.Millisecond, 2: 2 * time.Second,
		int64(3): 3 * time.Second, uint64(4): 4 * time.Second, 0.25: 250 * time.Millisecond, time.Minute: time.Minute} {
		if d, err := OptionDuration(v); err != nil || d != want {
			t.Errorf("OptionDuration(%v) = %v, %v; want %v", v, d, err, want)
		}
	}
	for _, bad := range []any{"soon", 0, -1.0, true, nil} {
		if _, err := OptionDuration(bad); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("OptionDuration(%v) = %v, want ErrInvalid", bad, err)
		}
	}
}
