package graphql

import (
	"encoding/json"

	genql "github.com/Khan/genqlient/graphql"

	"github.com/offsync/offsync/drivers/transport/graphql/internal/gqlclient"
)

// SetSlow makes s serve every operation through gqlgen's executor (the
// reference the fast path is held to).
func SetSlow(s *Server, slow bool) { s.slow = slow }

// DecodePullBoth decodes a pull answer with the one-pass decoder and with
// encoding/json (genqlient's way), as JSON for comparison; fast is false
// when the one-pass decoder declined.
func DecodePullBoth(body []byte) (fast, slow []byte, took bool, slowErr error) {
	var a gqlclient.PullResponse
	took = decodePull(body, &a)
	fast, _ = json.Marshal(a)
	var b gqlclient.PullResponse
	slowErr = json.Unmarshal(body, &genql.Response{Data: &b})
	slow, _ = json.Marshal(b)
	return fast, slow, took, slowErr
}
