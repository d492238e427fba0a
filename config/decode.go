package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/offsync/offsync/core"
)

// decoder walks the YAML syntax tree into a config struct. It is strict (an
// unknown or repeated key, or a value of the wrong shape, is a problem) and,
// unlike a decoder that stops at the first mistake, it goes on to collect
// every problem with its position.
type decoder struct {
	file    string
	lookup  func(string) (string, bool)
	pos     map[string]Pos
	anchors map[string]ast.Node
	errs    []*Error
}

var durationType = reflect.TypeFor[time.Duration]()

// nodeDecoder is implemented by types with a shape of their own (Strategy).
type nodeDecoder interface {
	decodeNode(d *decoder, n ast.Node, path string)
}

// parse parses data and decodes its single document into v (a pointer to a
// struct). It returns false when the document could not be read at all.
func (d *decoder) parse(data []byte, v any) bool {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		d.syntax(err)
		return false
	}
	var docs []*ast.DocumentNode
	for _, doc := range f.Docs {
		if doc != nil && doc.Body != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		d.errs = append(d.errs, &Error{File: d.file, Err: fmt.Errorf("%w: the config is empty", core.ErrInvalid)})
		return false
	}
	if len(docs) > 1 {
		d.problem(docs[1].Body, "", "%w: a config file holds one YAML document, found %d", core.ErrInvalid, len(docs))
	}
	body := d.resolve(docs[0].Body, "")
	if body == nil || body.Type() != ast.MappingType {
		d.problem(docs[0].Body, "", "%w: the config must be a mapping of keys to values", core.ErrInvalid)
		return false
	}
	d.decode(docs[0].Body, reflect.ValueOf(v).Elem(), "")
	return true
}

// syntax records a parse error at its token's position.
func (d *decoder) syntax(err error) {
	e := &Error{File: d.file, Err: fmt.Errorf("%w: YAML syntax: %v", core.ErrInvalid, err)}
	if se, ok := err.(interface {
		GetToken() *token.Token
		GetMessage() string
	}); ok {
		e.Err = fmt.Errorf("%w: YAML syntax: %s", core.ErrInvalid, se.GetMessage())
		if tk := se.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
	}
	d.errs = append(d.errs, e)
}

func position(n ast.Node) Pos {
	if n == nil {
		return Pos{}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return Pos{}
	}
	return Pos{tk.Position.Line, tk.Position.Column}
}

// problem records a problem at node n; format must use %w for a sentinel.
func (d *decoder) problem(n ast.Node, path, format string, args ...any) {
	p := position(n)
	d.errs = append(d.errs, &Error{File: d.file, Line: p.Line, Column: p.Column, Path: path, Err: fmt.Errorf(format, args...)})
}

// problemAt records a problem at the written position of path (or its
// nearest written parent).
func (d *decoder) problemAt(path string, err error) {
	s := source{file: d.file, pos: d.pos}
	d.errs = append(d.errs, s.Wrap(path, err).(*Error))
}

// resolve unwraps anchors, tags and aliases; it returns nil for a null.
func (d *decoder) resolve(n ast.Node, path string) ast.Node {
	for depth := 0; n != nil && depth < 100; depth++ {
		switch x := n.(type) {
		case *ast.AnchorNode:
			if x.Name != nil {
				d.anchors[x.Name.GetToken().Value] = x.Value
			}
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		case *ast.AliasNode:
			name := ""
			if x.Value != nil {
				name = x.Value.GetToken().Value
			}
			target, ok := d.anchors[name]
			if !ok {
				d.problem(n, path, "%w: alias *%s names no anchor defined before it", core.ErrInvalid, name)
				return nil
			}
			n = target
		case *ast.NullNode:
			return nil
		default:
			return n
		}
	}
	return n
}

func join2(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode stores node n into v. A null or absent value leaves v as it is.
func (d *decoder) decode(n ast.Node, v reflect.Value, path string) {
	orig := n
	n = d.resolve(n, path)
	if n == nil {
		return
	}
	if v.CanAddr() {
		if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
			nd.decodeNode(d, n, path)
			return
		}
	}
	if v.Type() == durationType {
		d.duration(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(orig, v.Elem(), path)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.Slice:
		d.sequence(n, v, path)
	case reflect.String:
		if s, ok := d.str(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if n.Type() != ast.BoolType {
			d.problem(n, path, "%w: want true or false, got %s", core.ErrInvalid, describe(n))
			return
		}
		var b bool
		if err := yaml.NodeToValue(n, &b); err != nil {
			d.problem(n, path, "%w: want true or false, got %s", core.ErrInvalid, describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		if n.Type() != ast.IntegerType {
			d.problem(n, path, "%w: want a whole number, got %s", core.ErrInvalid, describe(n))
			return
		}
		var i int64
		if err := yaml.NodeToValue(n, &i); err != nil || v.OverflowInt(i) {
			d.problem(n, path, "%w: %s is out of range", core.ErrInvalid, n.GetToken().Value)
			return
		}
		v.SetInt(i)
	case reflect.Interface:
		v.Set(reflect.ValueOf(d.generic(n, path)))
	default:
		panic(fmt.Sprintf("config: unsupported field type %s", v.Type()))
	}
}

// describe names a node's shape for a message.
func describe(n ast.Node) string {
	switch n.Type() {
	case ast.MappingType:
		return "a mapping"
	case ast.SequenceType:
		return "a list"
	case ast.StringType, ast.LiteralType:
		return strconv.Quote(scalarText(n))
	default:
		return n.GetToken().Value
	}
}

func scalarText(n ast.Node) string {
	var s string
	if err := yaml.NodeToValue(n, &s); err != nil {
		return n.GetToken().Value
	}
	return s
}

func isScalar(n ast.Node) bool {
	switch n.Type() {
	case ast.MappingType, ast.SequenceType, ast.MappingValueType:
		return false
	}
	return true
}

// str reads a scalar as a string and expands ${ENV} references in it.
func (d *decoder) str(n ast.Node, path string) (string, bool) {
	if !isScalar(n) {
		d.problem(n, path, "%w: want a string, got %s", core.ErrInvalid, describe(n))
		return "", false
	}
	s, err := expand(scalarText(n), d.lookup)
	if err != nil {
		d.problem(n, path, "%w", err)
		return "", false
	}
	return s, true
}

func (d *decoder) duration(n ast.Node, v reflect.Value, path string) {
	if n.Type() == ast.IntegerType && n.GetToken().Value == "0" {
		v.SetInt(0)
		return
	}
	if n.Type() != ast.StringType {
		d.problem(n, path, "%w: want a duration such as 30s, 5m or 1h30m, got %s", core.ErrInvalid, describe(n))
		return
	}
	s, ok := d.str(n, path)
	if !ok {
		return
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		d.problem(n, path, "%w: want a duration such as 30s, 5m or 1h30m, got %q", core.ErrInvalid, s)
		return
	}
	if dur < 0 {
		d.problem(n, path, "%w: a duration cannot be negative, got %s", core.ErrInvalid, s)
		return
	}
	v.SetInt(int64(dur))
}

// keys walks a mapping's entries, refusing repeated keys and recording each
// key's position.
func (d *decoder) keys(n ast.Node, path string, fn func(key string, keyNode, value ast.Node)) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		if mv, ok2 := n.(*ast.MappingValueNode); ok2 {
			m = &ast.MappingNode{Values: []*ast.MappingValueNode{mv}}
		} else {
			d.problem(n, path, "%w: want a mapping, got %s", core.ErrInvalid, describe(n))
			return
		}
	}
	seen := map[string]bool{}
	for _, mv := range m.Values {
		if mv.Key == nil {
			continue
		}
		keyNode := ast.Node(mv.Key)
		key := scalarText(keyNode)
		if k, ok := keyNode.(*ast.MappingKeyNode); ok && k.Value != nil {
			key = scalarText(k.Value)
		}
		if keyNode.Type() == ast.MergeKeyType {
			d.problem(keyNode, path, "%w: merge keys (<<) are not supported", core.ErrInvalid)
			continue
		}
		p := join2(path, key)
		if seen[key] {
			d.problem(keyNode, p, "%w: key %q is repeated", core.ErrInvalid, key)
			continue
		}
		seen[key] = true
		d.pos[p] = position(keyNode)
		fn(key, keyNode, mv.Value)
	}
}

// fields maps the yaml names of a struct's fields to their indexes.
func fields(t reflect.Type) (map[string]int, []string) {
	m := map[string]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if !f.IsExported() || tag == "" || tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		m[name] = i
		names = append(names, name)
	}
	sort.Strings(names)
	return m, names
}

func (d *decoder) structure(n ast.Node, v reflect.Value, path string) {
	idx, names := fields(v.Type())
	d.keys(n, path, func(key string, keyNode, value ast.Node) {
		i, ok := idx[key]
		if !ok {
			where := "the config"
			if path != "" {
				where = path
			}
			d.problem(keyNode, join2(path, key), "%w: unknown key %q in %s (known: %s)", core.ErrInvalid, key, where, strings.Join(names, ", "))
			return
		}
		d.decode(value, v.Field(i), join2(path, key))
	})
}

func (d *decoder) mapping(n ast.Node, v reflect.Value, path string) {
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	d.keys(n, path, func(key string, keyNode, value ast.Node) {
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(value, elem, join2(path, key))
		v.SetMapIndex(reflect.ValueOf(key), elem)
	})
}

func (d *decoder) sequence(n ast.Node, v reflect.Value, path string) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.problem(n, path, "%w: want a list, got %s", core.ErrInvalid, describe(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
	for i, item := range seq.Values {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.pos[p] = position(item)
		d.decode(item, out.Index(i), p)
	}
	v.Set(out)
}

// generic decodes a free-form value (driver options): mappings become
// map[string]any, lists []any, whole numbers int, and strings are expanded.
func (d *decoder) generic(n ast.Node, path string) any {
	n = d.resolve(n, path)
	if n == nil {
		return nil
	}
	switch n.Type() {
	case ast.MappingType, ast.MappingValueType:
		m := map[string]any{}
		d.keys(n, path, func(key string, _, value ast.Node) {
			m[key] = d.generic(value, join2(path, key))
		})
		return m
	case ast.SequenceType:
		seq := n.(*ast.SequenceNode)
		out := make([]any, len(seq.Values))
		for i, item := range seq.Values {
			out[i] = d.generic(item, fmt.Sprintf("%s[%d]", path, i))
		}
		return out
	case ast.StringType, ast.LiteralType:
		s, _ := d.str(n, path)
		return s
	case ast.IntegerType:
		var i int64
		if err := yaml.NodeToValue(n, &i); err == nil && i >= math.MinInt && i <= math.MaxInt {
			return int(i)
		}
		var u uint64
		if err := yaml.NodeToValue(n, &u); err == nil {
			return u
		}
		d.problem(n, path, "%w: %s is out of range", core.ErrInvalid, n.GetToken().Value)
		return nil
	default:
		var x any
		if err := yaml.NodeToValue(n, &x, yaml.Strict()); err != nil {
			d.problem(n, path, "%w: cannot read %s", core.ErrInvalid, describe(n))
			return nil
		}
		return x
	}
}

// decodeNode reads a strategy: a name, or {plugin, sha256, timeout}.
func (s *Strategy) decodeNode(d *decoder, n ast.Node, path string) {
	if isScalar(n) {
		if name, ok := d.str(n, path); ok {
			*s = Strategy{Name: name}
		}
		return
	}
	if n.Type() != ast.MappingType && n.Type() != ast.MappingValueType {
		d.problem(n, path, "%w: want a strategy name or {plugin: path, sha256: ...}, got %s", core.ErrInvalid, describe(n))
		return
	}
	*s = Strategy{}
	d.structure(n, reflect.ValueOf(s).Elem(), path)
	if s.Plugin == "" {
		d.problem(n, path, "%w: a strategy mapping needs plugin: the path of a resolver plugin", core.ErrInvalid)
	}
}
