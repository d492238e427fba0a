package graphql

import (
	"encoding/json"
	"errors"

	genql "github.com/Khan/genqlient/graphql"

	"github.com/offsync/offsync/drivers/transport/graphql/internal/gqlclient"
)

var errNoQuery = errors.New("no query")

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

// DecodeOpsBoth decodes a fast push's variables with the one-pass scanner
// and with encoding/json; took is false when the scanner declined.
func DecodeOpsBoth(raw []byte, name string) (scanned, decoded []byte, took, ok bool) {
	a, took := scanOps(raw, name)
	b, ok := decodeOpsJSON(raw, name)
	scanned, _ = json.Marshal(a)
	decoded, _ = json.Marshal(b)
	return scanned, decoded, took, ok
}

// ScanEnvelopeBoth is the same for a request body.
func ScanEnvelopeBoth(body []byte) (scanned, decoded []byte, took bool, err error) {
	a, took := scanEnvelope(body)
	scanned, _ = json.Marshal(a)
	var b envelope
	err = json.Unmarshal(body, &b)
	if err == nil && b.Query == "" {
		err = errNoQuery
	}
	decoded, _ = json.Marshal(&b)
	return scanned, decoded, took, err
}
