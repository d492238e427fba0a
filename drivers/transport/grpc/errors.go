package grpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
)

// errorDomain is the domain of the google.rpc.ErrorInfo every error carries.
const errorDomain = "offsync"

// statusCodes is the one table between the protocol's status numbers and
// gRPC codes. Going out, a number takes the code of its first row; coming
// in, a code with two rows is told apart by the error's details (see
// statusOfCode). It is built on wire's table: ErrorStatus gives the number
// and code of an authority's error, ErrorOf turns them back into core's
// sentinel.
var statusCodes = []struct {
	status int
	code   codes.Code
}{
	{http.StatusBadRequest, codes.InvalidArgument},
	{http.StatusUnauthorized, codes.Unauthenticated},
	{http.StatusForbidden, codes.PermissionDenied},
	{http.StatusNotFound, codes.NotFound},
	{http.StatusConflict, codes.Aborted},
	{http.StatusGone, codes.FailedPrecondition},                 // reason reset_required
	{http.StatusRequestEntityTooLarge, codes.ResourceExhausted}, // without RetryInfo
	{http.StatusUnprocessableEntity, codes.FailedPrecondition},  // any other reason
	{http.StatusTooManyRequests, codes.ResourceExhausted},       // with RetryInfo
	{http.StatusInternalServerError, codes.Internal},
	{http.StatusNotImplemented, codes.Unimplemented},
	{http.StatusServiceUnavailable, codes.Unavailable},
}

// codeOf is the gRPC code of a status number.
func codeOf(status int) codes.Code {
	for _, r := range statusCodes {
		if r.status == status {
			return r.code
		}
	}
	if status >= 500 {
		return codes.Unavailable
	}
	return codes.InvalidArgument
}

// statusOfCode is the status number of a gRPC code, given the ErrorInfo
// reason and whether RetryInfo came with it. A status number in the
// ErrorInfo wins when it agrees with the code.
func statusOfCode(c codes.Code, reason string, declared int, retry bool) int {
	if declared > 0 && codeOf(declared) == c {
		return declared
	}
	switch c {
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.Aborted, codes.AlreadyExists:
		return http.StatusConflict
	case codes.FailedPrecondition:
		if reason == wire.CodeResetRequired {
			return http.StatusGone
		}
		return http.StatusUnprocessableEntity
	case codes.ResourceExhausted:
		if retry || reason == wire.CodeRateLimited {
			return http.StatusTooManyRequests
		}
		return http.StatusRequestEntityTooLarge
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return http.StatusInternalServerError
	}
	// Unavailable, Canceled, DeadlineExceeded and anything new: retry later.
	return http.StatusServiceUnavailable
}

// retryDelay is what a 429 or 503 of the server tells the client to wait.
const retryDelay = time.Second

// statusErr turns an error of the authority (or of the server half's own
// checks) into the gRPC status of the wire table. A 500's details stay in
// the server's log.
func statusErr(err error) error {
	s, reason := wire.ErrorStatus(err)
	return statusWith(s, reason, err)
}

func statusWith(httpStatus int, reason string, err error) error {
	msg := err.Error()
	if httpStatus == http.StatusInternalServerError {
		msg = "internal error"
	}
	st := status.New(codeOf(httpStatus), msg)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain,
		Metadata: map[string]string{"status": strconv.Itoa(httpStatus)}}}
	if httpStatus == http.StatusTooManyRequests || httpStatus == http.StatusServiceUnavailable {
		delay := retryDelay
		if d := server.RetryAfter(err); d > 0 {
			delay = d // a rate limit says when
		}
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	}
	if ds, derr := st.WithDetails(details...); derr == nil {
		st = ds
	}
	return st.Err()
}

// statusWithCode is statusWith for an error the half makes itself.
func statusWithCode(httpStatus int, reason, format string, args ...any) error {
	return statusWith(httpStatus, reason, fmt.Errorf(format, args...))
}

// remoteStatus reads the status number, reason, message and retry delay of
// an RPC error.
func remoteStatus(err error) (httpStatus int, reason, msg string, retryAfter time.Duration) {
	st := status.Convert(err)
	declared := 0
	retry := false
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
			if n, err := strconv.Atoi(d.GetMetadata()["status"]); err == nil {
				declared = n
			}
		case *errdetails.RetryInfo:
			retry = true
			retryAfter = d.GetRetryDelay().AsDuration()
		}
	}
	return statusOfCode(st.Code(), reason, declared, retry), reason, st.Message(), retryAfter
}

// clientErr maps an RPC error to core's sentinels (wire.ErrorOf), with what
// the server said. A call cut by the caller's ctx is core.ErrUnavailable
// wrapping ctx's error.
func clientErr(ctx context.Context, what string, err error) error {
	if ce := ctx.Err(); ce != nil {
		return fmt.Errorf("grpc: %s: %w (%w)", what, core.ErrUnavailable, ce)
	}
	if _, ok := status.FromError(err); !ok && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("grpc: %s: %w: %v", what, core.ErrUnavailable, err)
	}
	s, reason, msg, _ := remoteStatus(err)
	return wire.Errorf("grpc: "+what, s, reason, msg)
}
