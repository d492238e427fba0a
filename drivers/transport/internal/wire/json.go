package wire

import "encoding/json"

// AppendString appends s as a JSON string, as encoding/json writes it: a
// string of printable ASCII without quotes, backslashes or HTML's <, > and
// & is copied between quotes; any other goes through encoding/json (its
// escapes, and U+FFFD for invalid UTF-8).
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
