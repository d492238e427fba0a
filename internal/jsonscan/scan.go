package jsonscan

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// Scanner reads JSON tokens from B, starting at I, strictly (the JSON
// grammar, no extensions). Each method reads one token at I and advances
// past it when it reports true; on false, I is unspecified.
type Scanner struct {
	B []byte
	I int
}

// EOF reports that I is at the end of B.
func (s *Scanner) EOF() bool { return s.I >= len(s.B) }

// WS skips white space.
func (s *Scanner) WS() {
	for s.I < len(s.B) {
		switch s.B[s.I] {
		case ' ', '\t', '\n', '\r':
			s.I++
		default:
			return
		}
	}
}

// Byte reads the byte c.
func (s *Scanner) Byte(c byte) bool {
	if s.I < len(s.B) && s.B[s.I] == c {
		s.I++
		return true
	}
	return false
}

// Literal reads lit (true, false, null).
func (s *Scanner) Literal(lit string) bool {
	if strings.HasPrefix(string(s.B[s.I:min(len(s.B), s.I+len(lit))]), lit) {
		s.I += len(lit)
		return true
	}
	return false
}

// PlainString reads a string without escapes whose bytes are valid UTF-8
// (what encoding/json would return unchanged). The bytes are B's own.
func (s *Scanner) PlainString() ([]byte, bool) {
	if !s.Byte('"') {
		return nil, false
	}
	start := s.I
	ascii := true
	for s.I < len(s.B) {
		c := s.B[s.I]
		switch {
		case c == '"':
			str := s.B[start:s.I]
			s.I++
			if !ascii && !utf8.Valid(str) {
				return nil, false
			}
			return str, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
		s.I++
	}
	return nil, false
}

// AnyString reads a string, unescaping it with encoding/json when it has
// escapes.
func (s *Scanner) AnyString() (string, bool) {
	start := s.I
	if str, ok := s.PlainString(); ok {
		return string(str), true
	}
	s.I = start
	if !s.Byte('"') {
		return "", false
	}
	for s.I < len(s.B) {
		switch c := s.B[s.I]; {
		case c == '\\':
			s.I += 2
			continue
		case c == '"':
			s.I++
			var str string
			if err := json.Unmarshal(s.B[start:s.I], &str); err != nil {
				return "", false
			}
			return str, true
		}
		s.I++
	}
	return "", false
}

// Number reads a number and returns it as written.
func (s *Scanner) Number() (string, bool) {
	start := s.I
	s.Byte('-')
	switch {
	case s.Byte('0'):
	case s.I < len(s.B) && s.B[s.I] >= '1' && s.B[s.I] <= '9':
		s.digits()
	default:
		return "", false
	}
	if s.Byte('.') {
		if !s.digits() {
			return "", false
		}
	}
	if s.Byte('e') || s.Byte('E') {
		if !s.Byte('+') {
			s.Byte('-')
		}
		if !s.digits() {
			return "", false
		}
	}
	return string(s.B[start:s.I]), true
}

func (s *Scanner) digits() bool {
	start := s.I
	for s.I < len(s.B) && s.B[s.I] >= '0' && s.B[s.I] <= '9' {
		s.I++
	}
	return s.I > start
}

// SkipScalar skips a string, number, true, false or null.
func (s *Scanner) SkipScalar() bool {
	if s.I >= len(s.B) {
		return false
	}
	switch c := s.B[s.I]; {
	case c == '"':
		_, ok := s.AnyString()
		return ok
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := s.Number()
		return ok
	default:
		return s.Literal("true") || s.Literal("false") || s.Literal("null")
	}
}
