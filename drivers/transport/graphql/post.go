package graphql

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/offsync/offsync/drivers/transport/internal/wire"
)

// postTransport is the half's POST /graphql: the body within
// Limits.MaxMessage (else 413 TOO_LARGE), a request refused before it runs
// answered with the status of its first error, an executed one with 200.
// The answer is written without re-encoding the data gqlgen built.
type postTransport struct{ s *Server }

var _ graphql.Transport = postTransport{}

func (postTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodPost && r.Header.Get("Upgrade") == ""
}

func (p postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeErrors(w, http.StatusUnsupportedMediaType, newError(http.StatusUnsupportedMediaType, wire.CodeBadRequest,
			"the body must be application/json"))
		return
	}
	limit := p.s.lim.MaxMessage
	tooLarge := func() {
		writeErrors(w, http.StatusRequestEntityTooLarge, newError(http.StatusRequestEntityTooLarge, wire.CodeTooLarge,
			fmt.Sprintf("the body is over %d bytes", limit)))
	}
	if r.ContentLength > limit {
		tooLarge()
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			tooLarge()
			return
		}
		writeErrors(w, http.StatusBadRequest, newError(http.StatusBadRequest, wire.CodeBadRequest, "reading the body: "+err.Error()))
		return
	}
	env, vars, err := decodeRequest(body)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, newError(http.StatusBadRequest, wire.CodeBadRequest, err.Error()))
		return
	}
	key := env.OperationName + "\x00" + env.Query
	if !p.s.slow {
		if sh, ok := p.s.shapes.get(key); ok && sh.kind == shapePush {
			if b, ok := p.fastPush(ctx, env, sh); ok {
				writeBody(w, http.StatusOK, b)
				return
			}
		}
	}
	if vars, err = decodeVariables(env.Variables); err != nil {
		writeErrors(w, http.StatusBadRequest, newError(http.StatusBadRequest, wire.CodeBadRequest, err.Error()))
		return
	}
	var ext map[string]any
	if len(env.Extensions) > 0 {
		_ = json.Unmarshal(env.Extensions, &ext)
	}
	params := &graphql.RawParams{Query: env.Query, OperationName: env.OperationName,
		Variables: vars, Extensions: ext, Headers: r.Header}
	start := graphql.Now()
	params.ReadTime = graphql.TraceTiming{Start: start, End: start}

	oc, opErrs := exec.CreateOperationContext(ctx, params)
	if opErrs != nil {
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, oc), opErrs)
		writeResponse(w, statusOfResponse(resp), resp)
		return
	}
	if oc.Operation.Operation == ast.Subscription {
		writeErrors(w, http.StatusBadRequest, newError(http.StatusBadRequest, wire.CodeBadRequest,
			"a subscription needs a graphql-transport-ws socket"))
		return
	}
	sh, ok := p.s.shapes.get(key)
	if !ok {
		sh = classify(oc.Operation)
		p.s.shapes.put(key, sh)
	}
	if sh.kind == shapePull && !p.s.slow {
		if b, ok := p.fastPull(graphql.WithOperationContext(ctx, oc), oc, sh); ok {
			writeBody(w, http.StatusOK, b)
			return
		}
	}
	responses, ctx := exec.DispatchOperation(ctx, oc)
	writeResponse(w, http.StatusOK, responses(ctx))
}

// decodeRequest reads a POST body, its variables left undecoded.
func decodeRequest(body []byte) (*envelope, map[string]any, error) {
	if env, ok := scanEnvelope(body); ok {
		return env, nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(body))
	var env envelope
	if err := d.Decode(&env); err != nil {
		return nil, nil, fmt.Errorf("the body is not a GraphQL request ({\"query\":...,\"variables\":{...}}): %v", err)
	}
	if d.More() {
		return nil, nil, fmt.Errorf("the body has data after the request object")
	}
	if env.Query == "" {
		return nil, nil, fmt.Errorf("the request has no query")
	}
	return &env, nil, nil
}

// decodeVariables decodes the variables object. Numbers stay json.Number,
// so no digit of a payload is lost on its way to the JSON scalar.
func decodeVariables(raw json.RawMessage) (map[string]any, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var vars map[string]any
	if err := d.Decode(&vars); err != nil {
		return nil, fmt.Errorf("the variables are not a JSON object: %v", err)
	}
	return vars, nil
}

// statusOfResponse is the HTTP status of a request refused before it ran.
func statusOfResponse(resp *graphql.Response) int {
	if resp != nil && len(resp.Errors) > 0 {
		if st, ok := resp.Errors[0].Extensions["status"].(int); ok && st >= 400 {
			return st
		}
	}
	return http.StatusBadRequest
}

// writeResponse writes {"errors":[...],"data":...,"extensions":{...}},
// the data as gqlgen built it.
func writeResponse(w http.ResponseWriter, status int, resp *graphql.Response) {
	if resp == nil {
		resp = &graphql.Response{Data: []byte("null")}
	}
	writeBody(w, status, responseBytes(resp))
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
