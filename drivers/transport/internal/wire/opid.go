package wire

import (
	"fmt"

	"github.com/offsync/offsync/core"
)

// MaxOpIDBytes is the longest op id (idempotency key) a server half accepts.
const MaxOpIDBytes = 255

// CheckOpID refuses an op id that cannot be stored and compared sanely: it
// must have 1 to MaxOpIDBytes bytes of printable ASCII without spaces.
// Errors wrap core.ErrInvalid.
func CheckOpID(id string) error {
	if id == "" || len(id) > MaxOpIDBytes {
		return fmt.Errorf("%w: an op id must have 1 to %d bytes", core.ErrInvalid, MaxOpIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%w: an op id must be printable ASCII without spaces", core.ErrInvalid)
		}
	}
	return nil
}
