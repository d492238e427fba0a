package graphql

import (
	"encoding/json"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/graphql/internal/gqlserver"
	"github.com/offsync/offsync/internal/jsonscan"
)

// One strict pass over a request body for the common case: plain keys,
// each once. Anything else reports false and encoding/json decides, so the
// answers never depend on which decoder ran.

// scanEnvelope reads {"query":...,"operationName":...,"variables":{...},
// "extensions":{...}}, the variables and extensions as slices of body.
func scanEnvelope(body []byte) (*envelope, bool) {
	var env envelope
	seen := map[string]bool{}
	s := &jsonscan.Scanner{B: body}
	ok := object(s, func(key []byte) bool {
		k := string(key)
		if seen[k] {
			return false
		}
		seen[k] = true
		switch k {
		case "query":
			str, ok := s.AnyString()
			env.Query = str
			return ok
		case "operationName":
			if s.Literal("null") {
				return true
			}
			str, ok := s.AnyString()
			env.OperationName = str
			return ok
		case "variables", "extensions":
			start := s.I
			if !skipValue(s, 0) {
				return false
			}
			if k == "variables" {
				env.Variables = json.RawMessage(body[start:s.I])
			} else {
				env.Extensions = json.RawMessage(body[start:s.I])
			}
			return true
		}
		return false
	})
	s.WS()
	if !ok || !s.EOF() || env.Query == "" {
		return nil, false
	}
	return &env, true
}

// scanOps reads the variables of a fast push, {"NAME":[op,...]}, as
// decodeOps does.
func scanOps(raw []byte, name string) ([]core.Op, bool) {
	var ops []core.Op
	found := false
	s := &jsonscan.Scanner{B: raw}
	ok := object(s, func(key []byte) bool {
		if string(key) != name || found {
			return false
		}
		found = true
		if !s.Byte('[') {
			return false
		}
		ops = make([]core.Op, 0, 64)
		s.WS()
		if s.Byte(']') {
			return true
		}
		for {
			op, ok := scanOp(s)
			if !ok {
				return false
			}
			ops = append(ops, op)
			s.WS()
			if s.Byte(',') {
				s.WS()
				continue
			}
			return s.Byte(']')
		}
	})
	s.WS()
	return ops, ok && found && s.EOF()
}

func scanOp(s *jsonscan.Scanner) (core.Op, bool) {
	var op core.Op
	var have uint8
	const opID, kind, id, typ = 1, 2, 4, 8
	var seen uint16
	ok := object(s, func(key []byte) bool {
		var bit uint16
		var ok bool
		switch string(key) {
		case "opId":
			bit = 1
			op.OpID, ok = s.AnyString()
			have |= opID
		case "kind":
			bit = 2
			op.Kind, ok = s.AnyString()
			have |= kind
		case "id":
			bit = 4
			op.ID, ok = s.AnyString()
			have |= id
		case "type":
			bit = 8
			var t []byte
			t, ok = s.PlainString()
			switch string(t) {
			case string(gqlserver.OpTypeUpsert):
				op.Type = core.OpUpsert
			case string(gqlserver.OpTypeDelete):
				op.Type = core.OpDelete
			default:
				ok = false
			}
			have |= typ
		case "payload":
			bit = 16
			if s.Literal("null") {
				return true
			}
			start := s.I
			if !s.Byte('{') {
				return false
			}
			s.I = start
			ok = skipValue(s, 0)
			op.Payload = json.RawMessage(s.B[start:s.I])
		case "baseUpdatedAt", "editedAt":
			bit = 32
			if string(key) == "editedAt" {
				bit = 64
			}
			if s.Literal("null") {
				ok = true
				break
			}
			str, isStr := s.PlainString()
			if !isStr {
				return false
			}
			t, err := core.ParseTime(string(str))
			if err != nil {
				return false
			}
			if bit == 32 {
				op.BaseUpdatedAt = t
			} else {
				op.EditedAt = t
			}
			ok = true
		case "force":
			bit = 128
			switch {
			case s.Literal("true"):
				op.Force, ok = true, true
			case s.Literal("false"), s.Literal("null"):
				ok = true
			}
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return ok
	})
	return op, ok && have == opID|kind|id|typ
}
