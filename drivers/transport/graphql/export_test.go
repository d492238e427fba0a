package graphql_test

import (
	"time"

	"github.com/offsync/offsync/drivers/transport/internal/wire"
)

func wireBackoff(lo, hi time.Duration) wire.Backoff { return wire.Backoff{Min: lo, Max: hi} }
