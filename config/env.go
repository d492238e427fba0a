package config

import (
	"fmt"
	"strings"

	"github.com/offsync/offsync/core"
)

// expand replaces ${NAME} with the environment variable NAME and $$ with a
// single $. A $ followed by anything else stays as written, so regular
// expressions ending in $ need no escaping. An unset variable, an empty or
// malformed name and an unterminated ${ are errors.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", fmt.Errorf("%w: unterminated ${ in %q", core.ErrInvalid, s)
			}
			name := s[i+2 : i+2+end]
			if !validEnvName(name) {
				return "", fmt.Errorf("%w: bad environment variable name %q (want letters, digits and _)", core.ErrInvalid, name)
			}
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("%w: environment variable %s is not set", core.ErrInvalid, name)
			}
			b.WriteString(v)
			i += 2 + end
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
