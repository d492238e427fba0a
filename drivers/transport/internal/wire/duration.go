package wire

import (
	"fmt"
	"time"

	"github.com/offsync/offsync/core"
)

// OptionDuration reads a driver option that is a duration: a
// time.Duration, a string like "10s", or a number of seconds. It must be
// positive; errors wrap core.ErrInvalid.
func OptionDuration(v any) (time.Duration, error) {
	var d time.Duration
	switch x := v.(type) {
	case time.Duration:
		d = x
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", core.ErrInvalid, err)
		}
		d = p
	case int:
		d = time.Duration(x) * time.Second
	case int64:
		d = time.Duration(x) * time.Second
	case uint64:
		d = time.Duration(x) * time.Second
	case float64:
		d = time.Duration(x * float64(time.Second))
	default:
		return 0, fmt.Errorf("%w: want a duration like \"10s\" or seconds, got %T", core.ErrInvalid, v)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%w: must be positive, got %v", core.ErrInvalid, d)
	}
	return d, nil
}
