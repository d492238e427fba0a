package jsonscan

import "testing"

func TestNumber(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-0": "-0", "12,": "12", "1.5}": "1.5", "1e10": "1e10", "-2.5E-3 ": "-2.5E-3", "01": "0",
	} {
		s := Scanner{B: []byte(in)}
		if got, ok := s.Number(); !ok || got != want {
			t.Errorf("Number(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-", "1.", ".5", "1e", "+1", "x"} {
		s := Scanner{B: []byte(in)}
		if got, ok := s.Number(); ok {
			t.Errorf("Number(%q) = %q, want no number", in, got)
		}
	}
}

func TestStrings(t *testing.T) {
	for in, want := range map[string]string{`"abc"`: "abc", `""`: "", `"é"`: "é"} {
		s := Scanner{B: []byte(in)}
		if got, ok := s.PlainString(); !ok || string(got) != want || !s.EOF() {
			t.Errorf("PlainString(%q) = %q, %v", in, got, ok)
		}
	}
	for _, in := range []string{`"a\"b"`, "\"\xff\"", "\"a\nb\"", `"open`, `abc`} {
		s := Scanner{B: []byte(in)}
		if got, ok := s.PlainString(); ok {
			t.Errorf("PlainString(%q) = %q, want refused", in, got)
		}
	}
	s := Scanner{B: []byte(`"a\"b\u00e9"`)}
	if got, ok := s.AnyString(); !ok || got != `a"bé` {
		t.Errorf(`AnyString = %q, %v; want a"bé`, got, ok)
	}
	s = Scanner{B: []byte(` true, null`)}
	s.WS()
	if !s.SkipScalar() || !s.Byte(',') {
		t.Error("SkipScalar did not skip true")
	}
	s.WS()
	if !s.Literal("null") || !s.EOF() {
		t.Error("Literal(null) failed")
	}
}
