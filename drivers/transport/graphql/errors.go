package graphql

import (
	"fmt"
	"net/http"

	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
)

// The extensions.code values of the GraphQL form. Each error also carries
// extensions.status (the number REST would answer) and extensions.reason
// (REST's error code); a client maps status and reason with the shared wire
// table, and falls back to the code for a server that sends only the code.
const (
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeNotFound        = "NOT_FOUND"
	CodeResetRequired   = "RESET_REQUIRED"
	CodeTooLarge        = "TOO_LARGE"
	CodeRateLimited     = "RATE_LIMITED"
	CodeUnavailable     = "UNAVAILABLE"
)

// codeOf is the extensions.code of a status number: the one table between
// the wire's numbers and the GraphQL codes (statusOf is its inverse).
func codeOf(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return CodeUnauthenticated
	case status == http.StatusForbidden:
		return CodeForbidden
	case status == http.StatusNotFound:
		return CodeNotFound
	case status == http.StatusGone:
		return CodeResetRequired
	case status == http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case status == http.StatusTooManyRequests:
		return CodeRateLimited
	case status >= 500:
		return CodeUnavailable
	}
	return CodeBadUserInput // 400, and the 409 and 422 no call answers as a whole
}

// statusOf is the status number of a code, for an answer without
// extensions.status.
func statusOf(code string) int {
	switch code {
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	case CodeForbidden:
		return http.StatusForbidden
	case CodeNotFound:
		return http.StatusNotFound
	case CodeResetRequired:
		return http.StatusGone
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeBadUserInput, "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED":
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable // not the contract's: try later
}

// newError is an error of the GraphQL form with its three extensions.
func newError(status int, reason, msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{
		"code": codeOf(status), "status": status, "reason": reason,
	}}
}

// errorOf maps an error of the authority (or of an argument) to the form's
// error: its status and reason from the wire table, the code from codeOf.
// Internal errors keep their details out of the answer.
func errorOf(err error) *gqlerror.Error {
	status, reason := wire.ErrorStatus(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "internal error"
	}
	e := newError(status, reason, msg)
	switch status {
	case http.StatusServiceUnavailable:
		e.Extensions["retryAfterMs"] = 1000
	case http.StatusTooManyRequests:
		e.Extensions["retryAfterMs"] = max(server.RetryAfter(err).Milliseconds(), 1)
	}
	return e
}

// clientError is what a client returns for an error of an answer: the
// sentinel of its status and reason (or code), wrapped with the call.
func clientError(what string, code string, status int, reason, msg string) error {
	if status == 0 {
		status = statusOf(code)
	}
	if status == http.StatusBadRequest && reason == "" {
		reason = wire.CodeBadRequest
	}
	return fmt.Errorf("graphql: %s: %w (%s %d %s: %s)", what, wire.ErrorOf(status, reason), code, status, reason, msg)
}

func notImplemented(what string) *gqlerror.Error {
	return newError(http.StatusNotImplemented, wire.CodeNotImplemented, what+": the server cannot serve it")
}
