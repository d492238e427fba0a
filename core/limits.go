package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Limits every transport and store can rely on. An id or a kind beyond them
// would end up in every replica's resume query and page token, so they are
// fixed, not configurable.
const (
	// MaxIDBytes is the longest record id, in bytes of UTF-8.
	MaxIDBytes = 256
	// MaxKindBytes is the longest kind name, in bytes.
	MaxKindBytes = 64
	// DefaultMaxDepth is how deeply a payload may nest objects and arrays
	// unless the authority is configured otherwise (the payload object
	// itself is level 1).
	DefaultMaxDepth = 64
)

// CheckID validates a record id: 1 to MaxIDBytes bytes of valid UTF-8
// without NUL. Errors wrap ErrInvalid.
func CheckID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty record id", ErrInvalid)
	case len(id) > MaxIDBytes:
		return fmt.Errorf("%w: a record id has at most %d bytes, got %d", ErrInvalid, MaxIDBytes, len(id))
	case strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("%w: a record id may not contain NUL", ErrInvalid)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: a record id must be valid UTF-8", ErrInvalid)
	}
	return nil
}

// CheckPayload validates the business fields of an upsert as an authority
// accepts them: exactly one JSON object, nested at most maxDepth levels (the
// object is level 1; maxDepth <= 0 means DefaultMaxDepth), in which no
// object names a key twice (keys compared after unescaping), every string
// and key is valid UTF-8 without NUL (raw or escaped) or a lone UTF-16
// surrogate, and no top-level field uses a reserved name. These are the
// documents every store can keep and read back (Postgres's jsonb refuses
// NUL and lone surrogates; SQLite's JSON functions stop at 1000 levels).
// Errors wrap ErrInvalid, or ErrReservedField for a reserved name.
func CheckPayload(data []byte, maxDepth int) error {
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	p := payloadScanner{b: data, max: maxDepth}
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return fmt.Errorf("%w: data must be a JSON object", ErrInvalid)
	}
	if err := p.value(0); err != nil {
		return err
	}
	p.ws()
	if p.i != len(p.b) {
		return p.fail("data after the object")
	}
	return nil
}

// payloadScanner is CheckPayload's recursive descent; its recursion is
// bounded by max.
type payloadScanner struct {
	b   []byte
	i   int
	max int
}

func (p *payloadScanner) fail(what string) error {
	return fmt.Errorf("%w: data: %s at byte %d", ErrInvalid, what, p.i)
}

func (p *payloadScanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value scans one value; depth is the nesting level of its container.
func (p *payloadScanner) value(depth int) error {
	p.ws()
	if p.i >= len(p.b) {
		return p.fail("unexpected end")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		_, _, err := p.str()
		return err
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return p.fail("unexpected character")
}

func (p *payloadScanner) deep(depth int) error {
	if depth > p.max {
		return fmt.Errorf("%w: data is nested deeper than %d levels", ErrInvalid, p.max)
	}
	return nil
}

func (p *payloadScanner) literal(lit string) error {
	if !bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
		return p.fail("invalid literal")
	}
	p.i += len(lit)
	return nil
}

func (p *payloadScanner) number() error {
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case digits() == 0:
		return p.fail("invalid number")
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return p.fail("invalid number")
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return p.fail("invalid number")
		}
	}
	return nil
}

func hexVal(c byte) rune {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0')
	case c >= 'a' && c <= 'f':
		return rune(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return rune(c-'A') + 10
	}
	return -1
}

// u4 reads the four hex digits of a \u escape at p.i.
func (p *payloadScanner) u4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		h := hexVal(c)
		if h < 0 {
			return 0, false
		}
		r = r<<4 | h
	}
	p.i += 4
	return r, true
}

// str scans a string token at p.i; it returns the raw text between the
// quotes and whether it holds escapes.
func (p *payloadScanner) str() (raw []byte, escaped bool, err error) {
	p.i++ // '"'
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			raw = p.b[start:p.i]
			p.i++
			return raw, escaped, nil
		case c < 0x20:
			return nil, false, p.fail("control character in a string")
		case c == '\\':
			escaped = true
			p.i++
			if p.i >= len(p.b) {
				return nil, false, p.fail("unexpected end")
			}
			e := p.b[p.i]
			p.i++
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				r, ok := p.u4()
				switch {
				case !ok:
					return nil, false, p.fail(`invalid \u escape`)
				case r == 0:
					return nil, false, p.fail("NUL in a string")
				case utf16.IsSurrogate(r):
					lo := rune(-1)
					if r < 0xdc00 && p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
						p.i += 2
						lo, ok = p.u4()
						if !ok {
							return nil, false, p.fail(`invalid \u escape`)
						}
					}
					if utf16.DecodeRune(r, lo) == utf8.RuneError {
						return nil, false, p.fail("lone UTF-16 surrogate in a string")
					}
				}
			default:
				return nil, false, p.fail("invalid escape")
			}
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRune(p.b[p.i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false, p.fail("invalid UTF-8")
			}
			p.i += size
		}
	}
	return nil, false, p.fail("unterminated string")
}

// keySetAt is how many keys an object holds before its duplicate check
// switches from a linear scan to a set.
const keySetAt = 16

func (p *payloadScanner) object(depth int) error {
	if err := p.deep(depth); err != nil {
		return err
	}
	p.i++ // '{'
	var arr [keySetAt][]byte
	keys := arr[:0]
	var set map[string]struct{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return p.fail("expected a key")
		}
		raw, escaped, err := p.str()
		if err != nil {
			return err
		}
		key := raw
		if escaped {
			var s string
			if err := json.Unmarshal(p.b[p.i-len(raw)-2:p.i], &s); err != nil {
				return p.fail("invalid key")
			}
			key = []byte(s)
		}
		if depth == 1 {
			if err := CheckFieldName(string(key)); err != nil {
				return err
			}
		}
		dup := false
		if set == nil {
			for _, k := range keys {
				if bytes.Equal(k, key) {
					dup = true
					break
				}
			}
			if keys = append(keys, key); len(keys) > keySetAt {
				set = make(map[string]struct{}, 2*keySetAt)
				for _, k := range keys {
					set[string(k)] = struct{}{}
				}
			}
		} else {
			_, dup = set[string(key)]
			set[string(key)] = struct{}{}
		}
		if dup {
			return fmt.Errorf("%w: data: key %q appears twice in one object", ErrInvalid, key)
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return p.fail("expected ':'")
		}
		p.i++
		if err := p.value(depth); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return p.fail("unexpected end")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or '}'")
		}
	}
}

func (p *payloadScanner) array(depth int) error {
	if err := p.deep(depth); err != nil {
		return err
	}
	p.i++ // '['
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return nil
	}
	for {
		if err := p.value(depth); err != nil {
			return err
		}
		p.ws()
		if p.i >= len(p.b) {
			return p.fail("unexpected end")
		}
		switch p.b[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return nil
		default:
			return p.fail("expected ',' or ']'")
		}
	}
}
