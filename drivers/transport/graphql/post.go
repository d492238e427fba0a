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

// request is the body of a POST: the GraphQL-over-HTTP request object.
type request struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
	Extensions    map[string]any `json:"extensions"`
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
	req, err := decodeRequest(body)
	if err != nil {
		writeErrors(w, http.StatusBadRequest, newError(http.StatusBadRequest, wire.CodeBadRequest, err.Error()))
		return
	}
	params := &graphql.RawParams{Query: req.Query, OperationName: req.OperationName,
		Variables: req.Variables, Extensions: req.Extensions, Headers: r.Header}
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
	responses, ctx := exec.DispatchOperation(ctx, oc)
	writeResponse(w, http.StatusOK, responses(ctx))
}

// decodeRequest reads a POST body. Numbers stay json.Number, so no digit of
// a payload is lost on its way to the JSON scalar.
func decodeRequest(body []byte) (*request, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var req request
	if err := d.Decode(&req); err != nil {
		return nil, fmt.Errorf("the body is not a GraphQL request ({\"query\":...,\"variables\":{...}}): %v", err)
	}
	if d.More() {
		return nil, fmt.Errorf("the body has data after the request object")
	}
	if req.Query == "" {
		return nil, fmt.Errorf("the request has no query")
	}
	return &req, nil
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
	b := make([]byte, 0, len(resp.Data)+64)
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
	b = append(b, '}')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
