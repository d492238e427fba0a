package grpc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
)

// TestStatusTableBothWays: every error of the authority goes out as the
// code of the wire table and comes back as the same sentinel.
func TestStatusTableBothWays(t *testing.T) {
	cases := []struct {
		err    error
		code   codes.Code
		status int
	}{
		{core.ErrInvalid, codes.InvalidArgument, 400},
		{core.ErrBadCursor, codes.InvalidArgument, 400},
		{core.ErrUnauthorized, codes.Unauthenticated, 401},
		{core.ErrForbidden, codes.PermissionDenied, 403},
		{core.ErrNotFound, codes.NotFound, 404},
		{core.ErrUnknownKind, codes.NotFound, 404},
		{core.ErrConflict, codes.Aborted, 409},
		{core.ErrResetRequired, codes.FailedPrecondition, 410},
		{core.ErrTooLarge, codes.ResourceExhausted, 413},
		{core.ErrRejected, codes.FailedPrecondition, 422},
		{core.ErrUnavailable, codes.Unavailable, 503},
	}
	ctx := context.Background()
	for _, tc := range cases {
		err := statusErr(fmt.Errorf("server: %w: detail", tc.err))
		st := status.Convert(err)
		if st.Code() != tc.code {
			t.Errorf("%v went out as %v, want %v", tc.err, st.Code(), tc.code)
		}
		if s, _, _, _ := remoteStatus(err); s != tc.status {
			t.Errorf("%v read back as %d, want %d", tc.err, s, tc.status)
		}
		if back := clientErr(ctx, "call", err); !errors.Is(back, tc.err) {
			t.Errorf("%v came back as %v", tc.err, back)
		}
	}
	// 429 carries RetryInfo; without details, ResourceExhausted is 413 and
	// FailedPrecondition is 422; a 500 hides its details.
	if s, _, _, after := remoteStatus(statusWithCode(http.StatusTooManyRequests, wire.CodeRateLimited, "slow down")); s != 429 || after != retryDelay {
		t.Errorf("429 read back as %d after %v", s, after)
	}
	if s, _, _, _ := remoteStatus(status.Error(codes.ResourceExhausted, "grpc: received message larger than max")); s != 413 {
		t.Errorf("a bare ResourceExhausted is %d, want 413", s)
	}
	if s, _, _, _ := remoteStatus(status.Error(codes.FailedPrecondition, "x")); s != 422 {
		t.Errorf("a bare FailedPrecondition is %d, want 422", s)
	}
	if st := status.Convert(statusErr(errors.New("disk on fire"))); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Errorf("an internal error went out as %v %q", st.Code(), st.Message())
	}
	if err := clientErr(ctx, "call", status.Error(codes.Internal, "x")); !errors.Is(err, core.ErrUnavailable) {
		t.Errorf("Internal came back as %v, want ErrUnavailable", err)
	}
	for _, r := range statusCodes {
		if got := statusOfCode(r.code, reasonFor(r.status), 0, r.status == 429); got != r.status {
			t.Errorf("row %d/%v reads back as %d", r.status, r.code, got)
		}
	}
}

func reasonFor(status int) string {
	if status == http.StatusGone {
		return wire.CodeResetRequired
	}
	return ""
}
