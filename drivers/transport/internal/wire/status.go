package wire

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/offsync/offsync/core"
)

// The error codes of the protocol, carried beside the status number by every
// wire form (REST's "error" member, a WebSocket error frame, GraphQL's
// extensions.code in lower case, a gRPC status's reason).
const (
	CodeUnknownKind    = "unknown_kind"
	CodeNotFound       = "not_found"
	CodeUnauthorized   = "unauthorized"
	CodeForbidden      = "forbidden"
	CodeTooLarge       = "too_large"
	CodeResetRequired  = "reset_required"
	CodeBadCursor      = "bad_cursor"
	CodeBadRequest     = "bad_request"
	CodeConflict       = "conflict"
	CodeRejected       = "rejected"
	CodeSkipped        = "skipped"
	CodeRateLimited    = "rate_limited"
	CodeUnavailable    = "unavailable"
	CodeInternal       = "internal"
	CodeNotImplemented = "not_implemented"
)

// ErrorStatus maps an error of the authority to the protocol's status number
// and code. It is the server halves' one table; ErrorOf is its inverse.
func ErrorStatus(err error) (status int, code string) {
	switch {
	case errors.Is(err, core.ErrUnknownKind):
		return http.StatusNotFound, CodeUnknownKind
	case errors.Is(err, core.ErrNotFound):
		return http.StatusNotFound, CodeNotFound
	case errors.Is(err, core.ErrUnauthorized):
		return http.StatusUnauthorized, CodeUnauthorized
	case errors.Is(err, core.ErrForbidden):
		return http.StatusForbidden, CodeForbidden
	case errors.Is(err, core.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, CodeTooLarge
	case errors.Is(err, core.ErrResetRequired):
		return http.StatusGone, CodeResetRequired
	case errors.Is(err, core.ErrBadCursor):
		return http.StatusBadRequest, CodeBadCursor
	case errors.Is(err, core.ErrInvalid), errors.Is(err, core.ErrReservedField):
		return http.StatusBadRequest, CodeBadRequest
	case errors.Is(err, core.ErrConflict):
		return http.StatusConflict, CodeConflict
	case errors.Is(err, core.ErrRejected), errors.Is(err, core.ErrIdempotencyKey):
		return http.StatusUnprocessableEntity, CodeRejected
	case errors.Is(err, core.ErrRateLimited):
		return http.StatusTooManyRequests, CodeRateLimited
	case errors.Is(err, core.ErrUnavailable), errors.Is(err, core.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, CodeUnavailable
	}
	return http.StatusInternalServerError, CodeInternal
}

// ErrorOf maps a status number and code received from an authority back to
// core's sentinel: what a client returns (wrapped with its own context) for
// an answer that is not a success. 429 is core.ErrRateLimited and 5xx
// core.ErrUnavailable (both retry later); any other 4xx the table does not
// name is core.ErrInvalid.
func ErrorOf(status int, code string) error {
	switch {
	case status == http.StatusUnauthorized:
		return core.ErrUnauthorized
	case status == http.StatusForbidden:
		return core.ErrForbidden
	case status == http.StatusNotFound && code == CodeUnknownKind:
		return core.ErrUnknownKind
	case status == http.StatusNotFound:
		return core.ErrNotFound
	case status == http.StatusGone:
		return core.ErrResetRequired
	case status == http.StatusRequestEntityTooLarge:
		return core.ErrTooLarge
	case status == http.StatusUnprocessableEntity:
		return core.ErrRejected
	case status == http.StatusConflict:
		return core.ErrConflict
	case status == http.StatusBadRequest && code == CodeBadCursor:
		return core.ErrBadCursor
	case status == http.StatusTooManyRequests:
		return core.ErrRateLimited // also core.ErrUnavailable: retry later
	case status >= 500:
		return core.ErrUnavailable
	case status >= 400:
		return core.ErrInvalid
	}
	return core.ErrUnavailable // 1xx–3xx: not the contract; try later
}

// Errorf returns an error wrapping ErrorOf(status, code) with the driver's
// prefix and the server's message, e.g. "websocket: pull todo: offsync: not
// found (404 not_found: ...)".
func Errorf(prefix string, status int, code, msg string) error {
	detail := fmt.Sprintf("%d %s", status, code)
	if msg != "" {
		detail += ": " + msg
	}
	return fmt.Errorf("%s: %w (%s)", prefix, ErrorOf(status, code), detail)
}

// ResultStatus is the status number of a per-op result: 200 applied, 409
// conflict, 404 not found, 422 rejected, 424 skipped, 503 retry.
func ResultStatus(s core.PushStatus) int {
	switch s {
	case core.StatusApplied:
		return http.StatusOK
	case core.StatusConflict:
		return http.StatusConflict
	case core.StatusNotFound:
		return http.StatusNotFound
	case core.StatusRejected:
		return http.StatusUnprocessableEntity
	case core.StatusSkipped:
		return http.StatusFailedDependency
	case core.StatusRetry:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ResultCode is the code that goes with ResultStatus ("" for applied).
func ResultCode(s core.PushStatus) string {
	switch s {
	case core.StatusConflict:
		return CodeConflict
	case core.StatusNotFound:
		return CodeNotFound
	case core.StatusRejected:
		return CodeRejected
	case core.StatusSkipped:
		return CodeSkipped
	case core.StatusRetry:
		return CodeUnavailable
	case core.StatusApplied:
		return ""
	}
	return CodeInternal
}

// ResultOf is the client side of a per-op answer: the push status of a
// result's status number and code, and whether a refusal is permanent. ok is
// false for answers that are not about the op but about the call (401, 403,
// 429, 5xx, and anything outside the contract): the client treats them as
// "this op was not processed; retry later" (StatusRetry) or as the error of
// the whole push, never as the op's failure.
func ResultOf(status int, code string) (s core.PushStatus, permanent, ok bool) {
	switch {
	case status == http.StatusOK || status == http.StatusCreated:
		return core.StatusApplied, false, true
	case status == http.StatusConflict:
		return core.StatusConflict, false, true
	case status == http.StatusNotFound && code == CodeUnknownKind:
		return core.StatusRejected, true, true
	case status == http.StatusNotFound:
		return core.StatusNotFound, false, true
	case status == http.StatusFailedDependency:
		return core.StatusSkipped, false, true
	case status == http.StatusUnprocessableEntity:
		return core.StatusRejected, true, true
	case status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusTooManyRequests, status >= 500, status < 400:
		return core.StatusRetry, false, false
	}
	// 400, 413 and any other 4xx: this op can never succeed as sent.
	return core.StatusRejected, true, true
}
