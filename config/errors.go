package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/offsync/offsync/core"
)

// Error is one problem in a config file, at a line and column. Err wraps a
// core sentinel (core.ErrInvalid, or core.ErrUnknownDriver for a driver that
// is not registered), so callers test it with errors.Is.
//
// Loading reports every problem it finds at once: the error returned by
// ParseClient and friends is an errors.Join of *Error values; Problems
// unpacks it.
type Error struct {
	File   string // the name given to Parse, or the path given to Load
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Path   string // the key's dotted path, e.g. "sync.interval"; "" for the document
	Err    error
}

func (e *Error) Error() string {
	loc := e.File
	if loc == "" {
		loc = "config"
	}
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", loc, e.Line, e.Column)
	}
	// The sentinel's text adds nothing next to a position; errors.Is still
	// finds it.
	msg := "<nil>"
	if e.Err != nil {
		msg = strings.TrimPrefix(e.Err.Error(), core.ErrInvalid.Error()+": ")
		msg = strings.TrimPrefix(msg, "offsync: ")
	}
	if e.Path != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Path, msg)
	}
	return fmt.Sprintf("%s: %s", loc, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Problems returns the positioned problems inside err (an *Error, or an
// errors.Join of them), in file order. It returns nil when err holds none.
func Problems(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*Error); ok {
			out = append(out, e)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// join sorts problems by position and joins them.
func join(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	sort.SliceStable(errs, func(i, j int) bool {
		if errs[i].Line != errs[j].Line {
			return errs[i].Line < errs[j].Line
		}
		return errs[i].Column < errs[j].Column
	})
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
}

// Pos is a position in a config file.
type Pos struct{ Line, Column int }

// source remembers where a config came from and where each key was, so that
// problems found later (a driver refusing its options) still point at a line.
type source struct {
	file string
	dir  string
	pos  map[string]Pos
}

// File returns the name the config was loaded from.
func (s *source) File() string { return s.file }

// Dir returns the directory relative paths in the config are resolved
// against: the config file's directory ("." when parsed from bytes without
// a path).
func (s *source) Dir() string {
	if s.dir == "" {
		return "."
	}
	return s.dir
}

// Position returns where the key at path (e.g. "store.dsn") was written, or
// the position of its nearest written parent; ok is false when neither was.
func (s *source) Position(path string) (p Pos, ok bool) {
	for {
		if p, ok := s.pos[path]; ok {
			return p, true
		}
		i := lastDot(path)
		if i < 0 {
			return Pos{}, false
		}
		path = path[:i]
	}
}

// Wrap returns err as an *Error positioned at the key path, so that a
// failure to open what the config names points at the line that named it.
// A nil err gives nil.
func (s *source) Wrap(path string, err error) error {
	if err == nil {
		return nil
	}
	p, _ := s.Position(path)
	return &Error{File: s.file, Line: p.Line, Column: p.Column, Path: path, Err: err}
}

func lastDot(path string) int {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '.' || path[i] == '[' {
			return i
		}
	}
	return -1
}
