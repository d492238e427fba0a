package graphql

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/graphql/internal/gqlserver"
)

// The two hot operations, a pull page and a push batch, are served on a
// fast path when their shape is plain: one root field (pull or push), no
// aliases, directives, fragments or __typename, and for push the ops as one
// variable. The operation is still parsed, validated, depth- and
// complexity-checked by gqlgen (cached per query text); only the execution
// changes: a push's ops are decoded straight from the body (no map of maps,
// no re-encoding of payloads) and the answer is written in one pass with
// gqlgen's own scalar marshalers. The answer is byte for byte the one the
// executor writes (fast_test.go holds the two side by side). Anything the
// fast path does not expect — another shape, a variable that does not
// decode, an error from the authority on a pull — goes through the executor,
// which writes the canonical answer.

// shape is how a query text is served.
type shape struct {
	kind  int // shapeNone, shapePull, shapePush
	field *ast.Field
	plan  []string   // the root field's sub-fields, in order
	rec   [][]string // per entry of plan: the Record fields of an object field (nil for scalars)
	opVar string     // push: the variable holding the ops
}

const (
	shapeNone = iota
	shapePull
	shapePush
)

// shapes caches the shape of each query text.
type shapes struct {
	mu sync.Mutex
	m  map[string]*shape
}

func (c *shapes) get(q string) (*shape, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[q]
	return s, ok
}

func (c *shapes) put(q string, s *shape) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= 256 {
		c.m = map[string]*shape{}
	}
	c.m[q] = s
}

// plainFields returns the fields of set, or false when set holds anything
// but distinct, unaliased fields without directives, arguments or
// __typename (and, unless nested, without selections of their own).
func plainFields(set ast.SelectionSet, nested bool) ([]*ast.Field, bool) {
	out := make([]*ast.Field, 0, len(set))
	seen := map[string]bool{}
	for _, sel := range set {
		f, ok := sel.(*ast.Field)
		if !ok || f.Alias != f.Name || len(f.Directives) > 0 || len(f.Arguments) > 0 ||
			f.Name == "__typename" || seen[f.Name] || (!nested && len(f.SelectionSet) > 0) {
			return nil, false
		}
		seen[f.Name] = true
		out = append(out, f)
	}
	return out, true
}

// classify finds the shape of an operation gqlgen parsed and validated.
func classify(op *ast.OperationDefinition) *shape {
	none := &shape{kind: shapeNone}
	if op == nil || len(op.SelectionSet) != 1 || len(op.Directives) > 0 {
		return none
	}
	root, ok := op.SelectionSet[0].(*ast.Field)
	if !ok || root.Alias != root.Name || len(root.Directives) > 0 {
		return none
	}
	s := &shape{field: root}
	switch {
	case op.Operation == ast.Query && root.Name == "pull":
		s.kind = shapePull
	case op.Operation == ast.Mutation && root.Name == "push":
		if len(root.Arguments) != 1 || root.Arguments[0].Name != "ops" ||
			root.Arguments[0].Value.Kind != ast.Variable || len(op.VariableDefinitions) != 1 ||
			op.VariableDefinitions[0].Variable != root.Arguments[0].Value.Raw {
			return none
		}
		s.kind, s.opVar = shapePush, root.Arguments[0].Value.Raw
	default:
		return none
	}
	fields, ok := plainFields(root.SelectionSet, true)
	if !ok {
		return none
	}
	for _, f := range fields {
		s.plan = append(s.plan, f.Name)
		if len(f.SelectionSet) == 0 {
			s.rec = append(s.rec, nil)
			continue
		}
		sub, ok := plainFields(f.SelectionSet, false)
		if !ok {
			return none
		}
		names := make([]string, len(sub))
		for i, g := range sub {
			names[i] = g.Name
		}
		s.rec = append(s.rec, names)
	}
	return s
}

// envelope is a POST body with its variables left undecoded.
type envelope struct {
	Query         string          `json:"query"`
	OperationName string          `json:"operationName"`
	Variables     json.RawMessage `json:"variables"`
	Extensions    json.RawMessage `json:"extensions"`
}

// fastOp is one op of a push, decoded straight from the body.
type fastOp struct {
	OpID          *string         `json:"opId"`
	Kind          *string         `json:"kind"`
	ID            *string         `json:"id"`
	Type          *string         `json:"type"`
	Payload       json.RawMessage `json:"payload"`
	BaseUpdatedAt *string         `json:"baseUpdatedAt"`
	EditedAt      *string         `json:"editedAt"`
	Force         *bool           `json:"force"`
}

// decodeOps reads the push variable of a fast push, or reports false when
// anything is off (the executor then answers with the canonical error).
func decodeOps(raw json.RawMessage, name string) ([]core.Op, bool) {
	if ops, ok := scanOps(raw, name); ok {
		return ops, true
	}
	return decodeOpsJSON(raw, name)
}

// decodeOpsJSON is decodeOps with encoding/json.
func decodeOpsJSON(raw json.RawMessage, name string) ([]core.Op, bool) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	var vars map[string][]fastOp // one pass: the ops decoded as the object is read
	if err := d.Decode(&vars); err != nil || len(vars) != 1 {
		return nil, false
	}
	in, ok := vars[name]
	if !ok || in == nil {
		return nil, false
	}
	ops := make([]core.Op, len(in))
	for i := range in {
		o := &in[i]
		if o.OpID == nil || o.Kind == nil || o.ID == nil || o.Type == nil {
			return nil, false
		}
		op := core.Op{OpID: *o.OpID, Kind: *o.Kind, ID: *o.ID}
		switch *o.Type {
		case string(gqlserver.OpTypeUpsert):
			op.Type = core.OpUpsert
		case string(gqlserver.OpTypeDelete):
			op.Type = core.OpDelete
		default:
			return nil, false
		}
		if len(o.Payload) > 0 && !bytes.Equal(o.Payload, []byte("null")) {
			if o.Payload[0] != '{' {
				return nil, false
			}
			op.Payload = o.Payload
		}
		var err error
		if o.BaseUpdatedAt != nil {
			if op.BaseUpdatedAt, err = core.ParseTime(*o.BaseUpdatedAt); err != nil {
				return nil, false
			}
		}
		if o.EditedAt != nil {
			if op.EditedAt, err = core.ParseTime(*o.EditedAt); err != nil {
				return nil, false
			}
		}
		if o.Force != nil {
			op.Force = *o.Force
		}
		ops[i] = op
	}
	return ops, true
}

// fastPush serves a push of the fast shape; false sends it to the executor.
func (p postTransport) fastPush(ctx context.Context, env *envelope, s *shape) ([]byte, bool) {
	ops, ok := decodeOps(env.Variables, s.opVar)
	if !ok {
		return nil, false
	}
	actx, err := p.s.authed(ctx)
	if err != nil {
		return nil, false
	}
	var res []core.PushResult
	if len(ops) > 0 {
		res, err = p.s.t.Push(actx, ops)
		if err == nil && len(res) != len(ops) {
			err = fmt.Errorf("graphql: the authority answered %d results for %d ops", len(res), len(ops))
		}
		if err != nil {
			e := p.s.present(ctx, &gqlerror.Error{Err: err, Message: err.Error(),
				Path:      ast.Path{ast.PathName("push")},
				Locations: []gqlerror.Location{{Line: s.field.Position.Line, Column: s.field.Position.Column}}})
			return responseBytes(&graphql.Response{Errors: gqlerror.List{e}, Data: []byte("null")}), true
		}
	}
	var buf bytes.Buffer
	buf.Grow(64 + 160*len(res))
	buf.WriteString(`{"data":{"push":[`)
	for i := range res {
		if i > 0 {
			buf.WriteByte(',')
		}
		r := resultOf(&res[i], ops[i].OpID)
		buf.WriteByte('{')
		for j, name := range s.plan {
			if j > 0 {
				buf.WriteByte(',')
			}
			writeKey(&buf, name)
			switch name {
			case "opId":
				graphql.MarshalID(r.OpID).MarshalGQL(&buf)
			case "status":
				graphql.MarshalInt(r.Status).MarshalGQL(&buf)
			case "error":
				writeOptString(&buf, r.Error)
			case "message":
				writeOptString(&buf, r.Message)
			case "permanent":
				if r.Permanent == nil {
					buf.WriteString("null")
				} else {
					graphql.MarshalBoolean(*r.Permanent).MarshalGQL(&buf)
				}
			case "retryAfterMs":
				if r.RetryAfterMs == nil {
					buf.WriteString("null")
				} else {
					graphql.MarshalInt(*r.RetryAfterMs).MarshalGQL(&buf)
				}
			case "record":
				writeOptRecord(&buf, r.Record, s.rec[j])
			case "current":
				writeOptRecord(&buf, r.Current, s.rec[j])
			}
		}
		buf.WriteByte('}')
	}
	buf.WriteString(`]}}`)
	return buf.Bytes(), true
}

// fastPull serves a pull of the fast shape over the operation gqlgen
// prepared; false sends it to the executor.
func (p postTransport) fastPull(ctx context.Context, oc *graphql.OperationContext, s *shape) ([]byte, bool) {
	args := s.field.ArgumentMap(oc.Variables)
	kind, ok := args["kind"].(string)
	if !ok {
		return nil, false
	}
	var after *core.Cursor
	if a, ok := args["after"].(map[string]any); ok {
		ts, ok1 := a["updatedAt"].(string)
		id, ok2 := a["id"].(string)
		if !ok1 || !ok2 {
			return nil, false
		}
		t, err := core.ParseTime(ts)
		if err != nil {
			return nil, false
		}
		after = &core.Cursor{UpdatedAt: t, ID: id}
	} else if args["after"] != nil {
		return nil, false
	}
	var token *string
	if v, ok := args["pageToken"].(string); ok {
		token = &v
	} else if args["pageToken"] != nil {
		return nil, false
	}
	var limit *int
	if v := args["limit"]; v != nil {
		n, err := graphql.UnmarshalInt(v)
		if err != nil {
			return nil, false
		}
		limit = &n
	}
	page, err := queryResolver{p.s}.Pull(ctx, kind, after, token, limit)
	if err != nil {
		return nil, false
	}
	var buf bytes.Buffer
	buf.Grow(256 + 200*len(page.Records))
	buf.WriteString(`{"data":{"pull":{`)
	for j, name := range s.plan {
		if j > 0 {
			buf.WriteByte(',')
		}
		writeKey(&buf, name)
		switch name {
		case "records":
			buf.WriteByte('[')
			for i := range page.Records {
				if i > 0 {
					buf.WriteByte(',')
				}
				writeRecord(&buf, &page.Records[i], s.rec[j])
			}
			buf.WriteByte(']')
		case "nextPageToken":
			writeOptString(&buf, page.NextPageToken)
		case "remaining":
			if page.Remaining == nil {
				buf.WriteString("null")
			} else {
				graphql.MarshalInt(*page.Remaining).MarshalGQL(&buf)
			}
		}
	}
	buf.WriteString(`}}}`)
	return buf.Bytes(), true
}

func writeKey(buf *bytes.Buffer, name string) {
	buf.WriteByte('"')
	buf.WriteString(name) // a GraphQL name needs no escaping
	buf.WriteString(`":`)
}

func writeOptString(w io.Writer, s *string) {
	if s == nil {
		_, _ = io.WriteString(w, "null")
		return
	}
	graphql.MarshalString(*s).MarshalGQL(w)
}

func writeOptRecord(buf *bytes.Buffer, r *core.Record, fields []string) {
	if r == nil {
		buf.WriteString("null")
		return
	}
	writeRecord(buf, r, fields)
}

// writeRecord writes the selected fields of r, as the executor does.
func writeRecord(buf *bytes.Buffer, r *core.Record, fields []string) {
	buf.WriteByte('{')
	for i, name := range fields {
		if i > 0 {
			buf.WriteByte(',')
		}
		writeKey(buf, name)
		switch name {
		case "kind":
			graphql.MarshalString(r.Kind).MarshalGQL(buf)
		case "id":
			graphql.MarshalID(r.ID).MarshalGQL(buf)
		case "updatedAt":
			writeTime(buf, r.UpdatedAt)
		case "deletedAt":
			writeTime(buf, r.DeletedAt)
		case "editedAt":
			writeTime(buf, r.EditedAt)
		case "data":
			gqlserver.MarshalJSONObject(r.Data).MarshalGQL(buf)
		}
	}
	buf.WriteByte('}')
}

func writeTime(buf *bytes.Buffer, t time.Time) {
	gqlserver.MarshalTime(t).MarshalGQL(buf)
}

// responseBytes is what writeResponse writes for resp.
func responseBytes(resp *graphql.Response) []byte {
	var b []byte
	b = append(b, '{')
	if len(resp.Errors) > 0 {
		js, err := json.Marshal(resp.Errors)
		if err != nil {
			js = []byte(`[{"message":"internal error"}]`)
		}
		b = append(b, `"errors":`...)
		b = append(b, js...)
	}
	if len(resp.Data) > 0 {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, `"data":`...)
		b = append(b, resp.Data...)
	}
	if len(resp.Extensions) > 0 {
		if js, err := json.Marshal(resp.Extensions); err == nil {
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = append(b, `"extensions":`...)
			b = append(b, js...)
		}
	}
	return append(b, '}')
}
