package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/offsync/offsync/core"
)

// ParseTokens reads a tokens file: one "TOKEN PRINCIPAL" pair per line
// (separated by spaces or tabs; blank lines and lines starting with # are
// ignored), or a JSON object {"TOKEN": "PRINCIPAL", ...}. A token may appear
// once; several tokens may map to one principal.
func ParseTokens(data []byte) (map[string]string, error) {
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		var m map[string]string
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("%w: tokens JSON: %v", core.ErrInvalid, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: tokens JSON: data after the object", core.ErrInvalid)
		}
		for tok, p := range m {
			if tok == "" || p == "" || strings.ContainsAny(tok, " \t\r\n") {
				return nil, fmt.Errorf("%w: tokens JSON: bad entry %q: %q", core.ErrInvalid, tok, p)
			}
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%w: the tokens file holds no token", core.ErrInvalid)
		}
		return m, nil
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: tokens file line %d: want \"TOKEN PRINCIPAL\", got %d fields", core.ErrInvalid, n, len(f))
		}
		if _, dup := m[f[0]]; dup {
			return nil, fmt.Errorf("%w: tokens file line %d: token given twice", core.ErrInvalid, n)
		}
		m[f[0]] = f[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: tokens file: %v", core.ErrInvalid, err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: the tokens file holds no token", core.ErrInvalid)
	}
	return m, nil
}

// Principals returns every accepted bearer token of the server config and
// its principal: server.tokens, and the tokens_file when set (read now). A
// token in both is refused.
func (s *Server) Principals() (map[string]core.Principal, error) {
	out := map[string]core.Principal{}
	for _, t := range s.Server.Tokens {
		out[t.Token] = core.Principal{ID: t.Principal, Attrs: t.Attrs}
	}
	if f := s.Server.TokensFile; f != "" {
		data, err := os.ReadFile(s.Path(f))
		if err != nil {
			return nil, s.Wrap("server.tokens_file", fmt.Errorf("%w: %v", core.ErrInvalid, err))
		}
		m, err := ParseTokens(data)
		if err != nil {
			return nil, s.Wrap("server.tokens_file", fmt.Errorf("%s: %w", f, err))
		}
		for tok, id := range m {
			if _, dup := out[tok]; dup {
				return nil, s.Wrap("server.tokens_file", fmt.Errorf("%w: a token of %s is also in server.tokens", core.ErrInvalid, f))
			}
			out[tok] = core.Principal{ID: id}
		}
	}
	return out, nil
}
