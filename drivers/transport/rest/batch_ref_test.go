package rest

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
)

// batchOpRef is one op of a POST /batch body, decoded strictly.
type batchOpRef struct {
	OpID          string          `json:"opId"`
	Kind          string          `json:"kind"`
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	BaseUpdatedAt *string         `json:"baseUpdatedAt"`
	EditedAt      *string         `json:"editedAt"`
	Force         bool            `json:"force"`
}

// decodeBatchRef is the reflective decoder decodeBatch replaced, kept
// verbatim as the reference of the differential tests. It parses and checks a POST /batch body. Every error wraps
// core.ErrInvalid (400); nothing is written for a bad batch.
func decodeBatchRef(body []byte, maxOps int) ([]core.Op, error) {
	if !json.Valid(body) {
		return nil, fmt.Errorf("%w: malformed JSON", core.ErrInvalid)
	}
	if i := skipWS(body, 0); i >= len(body) || body[i] != '{' {
		return nil, fmt.Errorf("%w: the body must be a JSON object", core.ErrInvalid)
	}
	var in struct {
		Ops *[]batchOpRef `json:"ops"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%w: %v", core.ErrInvalid, err)
	}
	if in.Ops == nil {
		return nil, fmt.Errorf("%w: \"ops\" is required", core.ErrInvalid)
	}
	if len(*in.Ops) > maxOps {
		return nil, fmt.Errorf("%w: %d ops in one batch, at most %d", core.ErrTooLarge, len(*in.Ops), maxOps)
	}
	ops := make([]core.Op, len(*in.Ops))
	seen := make(map[string]struct{}, len(ops))
	for n, bo := range *in.Ops {
		where := fmt.Sprintf("ops[%d]", n)
		if err := wire.CheckOpID(bo.OpID); err != nil {
			return nil, fmt.Errorf("%s.opId: %w", where, err)
		}
		if _, dup := seen[bo.OpID]; dup {
			return nil, fmt.Errorf("%w: %s: opId %q appears twice", core.ErrInvalid, where, bo.OpID)
		}
		seen[bo.OpID] = struct{}{}
		if bo.Kind == "" || reserved(bo.Kind) {
			return nil, fmt.Errorf("%w: %s: kind %q", core.ErrInvalid, where, bo.Kind)
		}
		if bo.ID == "" {
			return nil, fmt.Errorf("%w: %s: empty id", core.ErrInvalid, where)
		}
		op := core.Op{OpID: bo.OpID, Kind: bo.Kind, ID: bo.ID, Force: bo.Force}
		if bo.BaseUpdatedAt != nil && *bo.BaseUpdatedAt != "" {
			t, err := core.ParseTime(*bo.BaseUpdatedAt)
			if err != nil {
				return nil, fmt.Errorf("%s.baseUpdatedAt: %w", where, err)
			}
			op.BaseUpdatedAt = t
		}
		if bo.EditedAt != nil && *bo.EditedAt != "" {
			t, err := core.ParseTime(*bo.EditedAt)
			if err != nil {
				return nil, fmt.Errorf("%s.editedAt: %w", where, err)
			}
			op.EditedAt = t
		}
		switch core.OpType(bo.Type) {
		case core.OpUpsert:
			op.Type = core.OpUpsert
			if len(bo.Payload) == 0 || isNull(bo.Payload) {
				return nil, fmt.Errorf("%w: %s: an upsert needs a payload object", core.ErrInvalid, where)
			}
			f, err := splitBodyRef(bo.Payload, bo.ID)
			if err != nil {
				return nil, fmt.Errorf("%s.payload: %w", where, err)
			}
			op.Payload = f.payload
			if !f.base.IsZero() {
				if !op.BaseUpdatedAt.IsZero() && !op.BaseUpdatedAt.Equal(f.base) {
					return nil, fmt.Errorf("%w: %s: baseUpdatedAt and payload._baseUpdatedAt differ", core.ErrInvalid, where)
				}
				op.BaseUpdatedAt = f.base
			}
			if op.EditedAt.IsZero() {
				op.EditedAt = f.edited
			}
		case core.OpDelete:
			op.Type = core.OpDelete
			if len(bo.Payload) > 0 && !isNull(bo.Payload) {
				return nil, fmt.Errorf("%w: %s: a delete carries no payload", core.ErrInvalid, where)
			}
		default:
			return nil, fmt.Errorf("%w: %s: type must be \"upsert\" or \"delete\", got %q", core.ErrInvalid, where, bo.Type)
		}
		ops[n] = op
	}
	return ops, nil
}

// splitBodyRef is splitBody as it was before the batch decoder was
// rewritten, the reference of the differential tests. It parses a PUT body (or a batch op's payload): it must be a JSON
// object; system fields are checked for type and removed; an "id" must match
// id; other names starting with "_" are refused. Errors wrap core.ErrInvalid.
func splitBodyRef(b []byte, id string) (bodyFields, error) {
	var f bodyFields
	if !json.Valid(b) {
		return f, fmt.Errorf("%w: malformed JSON", core.ErrInvalid)
	}
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return f, fmt.Errorf("%w: the body must be a JSON object", core.ErrInvalid)
	}
	out := make([]byte, 0, len(b)+2)
	out = append(out, '{')
	first := true
	// Duplicate names are refused: a linear scan for small objects, a set
	// beyond that.
	var names []string
	var seen map[string]struct{}
	err := eachField(b, func(key, val []byte) error {
		name := keyName(key)
		dup := false
		if seen != nil {
			_, dup = seen[name]
			seen[name] = struct{}{}
		} else {
			for _, n := range names {
				if n == name {
					dup = true
					break
				}
			}
			names = append(names, name)
			if len(names) > 16 {
				seen = make(map[string]struct{}, 32)
				for _, n := range names {
					seen[n] = struct{}{}
				}
			}
		}
		if dup {
			return fmt.Errorf("%w: field %q appears twice", core.ErrInvalid, name)
		}
		var err error
		switch name {
		case "id":
			s, ok := rawString(val)
			if !ok {
				return fmt.Errorf("%w: id must be a string", core.ErrInvalid)
			}
			if s != id {
				return fmt.Errorf("%w: body id %q differs from the path id %q", core.ErrInvalid, s, id)
			}
		case "updated_at", "updatedAt", "deleted_at", "deletedAt":
			// Set by the authority; a client may echo them back. Checked, then ignored.
			_, err = rawTime(name, val)
		case "edited_at", "editedAt":
			f.edited, err = rawTime(name, val)
		case "_baseUpdatedAt":
			f.base, err = rawTime(name, val)
		default:
			if len(name) > 0 && name[0] == '_' {
				return fmt.Errorf("%w: unknown system field %q", core.ErrInvalid, name)
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = append(out, key...)
			out = append(out, ':')
			out = append(out, val...)
		}
		return err
	})
	if err != nil {
		return f, err
	}
	f.payload = append(out, '}')
	return f, nil
}
