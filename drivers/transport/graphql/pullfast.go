package graphql

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/offsync/offsync/drivers/transport/graphql/internal/gqlclient"
	"github.com/offsync/offsync/internal/jsonscan"
)

// decodePull reads the answer to the Pull operation without encoding/json
// when it is exactly {"data":{"pull":{...}}}: one strict pass, the records'
// data left as slices of the body. Anything else (errors, an unknown
// member, odd JSON) reports false, and genqlient's decoding takes over.
func decodePull(body []byte, out *gqlclient.PullResponse) bool {
	s := &jsonscan.Scanner{B: body}
	ok := object(s, func(key []byte) bool {
		if string(key) != "data" {
			return false
		}
		return object(s, func(key []byte) bool {
			if string(key) != "pull" {
				return false
			}
			return pullPage(s, &out.Pull)
		})
	})
	s.WS()
	return ok && s.EOF()
}

// object reads an object, calling member for each key with s at its value.
func object(s *jsonscan.Scanner, member func(key []byte) bool) bool {
	s.WS()
	if !s.Byte('{') {
		return false
	}
	s.WS()
	if s.Byte('}') {
		return true
	}
	for {
		s.WS()
		key, ok := s.PlainString()
		if !ok {
			return false
		}
		s.WS()
		if !s.Byte(':') {
			return false
		}
		s.WS()
		if !member(key) {
			return false
		}
		s.WS()
		if s.Byte(',') {
			continue
		}
		return s.Byte('}')
	}
}

func pullPage(s *jsonscan.Scanner, p *gqlclient.PullPullPage) bool {
	return object(s, func(key []byte) bool {
		switch string(key) {
		case "records":
			if !s.Byte('[') {
				return false
			}
			p.Records = make([]gqlclient.Record, 0, 64)
			s.WS()
			if s.Byte(']') {
				return true
			}
			for {
				var r gqlclient.Record
				if !record(s, &r) {
					return false
				}
				p.Records = append(p.Records, r)
				s.WS()
				if s.Byte(',') {
					s.WS()
					continue
				}
				return s.Byte(']')
			}
		case "nextPageToken":
			if s.Literal("null") {
				return true
			}
			v, ok := s.AnyString()
			p.NextPageToken = &v
			return ok
		case "remaining":
			if s.Literal("null") {
				return true
			}
			num, ok := s.Number()
			n, err := strconv.Atoi(num)
			p.Remaining = &n
			return ok && err == nil
		}
		return false
	})
}

func record(s *jsonscan.Scanner, r *gqlclient.Record) bool {
	var have int
	ok := object(s, func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "kind":
			r.Kind, ok = s.AnyString()
		case "id":
			r.Id, ok = s.AnyString()
		case "updatedAt":
			var t *time.Time
			t, ok = optTime(s)
			if ok && t != nil {
				r.UpdatedAt = *t
			}
		case "deletedAt":
			r.DeletedAt, ok = optTime(s)
		case "editedAt":
			r.EditedAt, ok = optTime(s)
		case "data":
			start := s.I
			if !s.Byte('{') {
				return false // null or not an object: let encoding/json judge
			}
			s.I = start
			ok = skipValue(s, 0)
			r.Data = json.RawMessage(s.B[start:s.I])
		default:
			return false
		}
		have++
		return ok
	})
	return ok && have == 6
}

func optTime(s *jsonscan.Scanner) (*time.Time, bool) {
	if s.Literal("null") {
		return nil, true
	}
	str, ok := s.PlainString()
	if !ok {
		return nil, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(str))
	return &t, err == nil
}

// skipValue skips one JSON value strictly.
func skipValue(s *jsonscan.Scanner, depth int) bool {
	if depth > 10000 {
		return false
	}
	s.WS()
	if s.EOF() {
		return false
	}
	switch s.B[s.I] {
	case '{':
		return object(s, func([]byte) bool { return skipValue(s, depth+1) }) // a key with escapes: encoding/json decides
	case '[':
		s.I++
		s.WS()
		if s.Byte(']') {
			return true
		}
		for {
			if !skipValue(s, depth+1) {
				return false
			}
			s.WS()
			if s.Byte(',') {
				continue
			}
			return s.Byte(']')
		}
	}
	return s.SkipScalar()
}
