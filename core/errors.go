package core

import (
	"errors"
	"fmt"
)

// Sentinel errors. Drivers wrap them (fmt.Errorf("...: %w", ErrX)) and callers
// test them with errors.Is, never by message.
var (
	ErrNotFound        = errors.New("offsync: not found")
	ErrConflict        = errors.New("offsync: conflict")
	ErrRejected        = errors.New("offsync: rejected")
	ErrInvalid         = errors.New("offsync: invalid input")
	ErrUnknownKind     = errors.New("offsync: unknown kind")
	ErrReservedField   = errors.New("offsync: reserved field name")
	ErrBadCursor       = errors.New("offsync: bad cursor")
	ErrResetRequired   = errors.New("offsync: reset required")
	ErrUnauthorized    = errors.New("offsync: unauthorized")
	ErrForbidden       = errors.New("offsync: forbidden")
	ErrUnavailable     = errors.New("offsync: unavailable, retry later")
	ErrTooLarge        = errors.New("offsync: too large")
	ErrIdempotencyKey  = errors.New("offsync: idempotency key reused with a different request")
	ErrClosed          = errors.New("offsync: closed")
	ErrDuplicateDriver = errors.New("offsync: duplicate driver")
	ErrUnknownDriver   = errors.New("offsync: unknown driver")
	// ErrSchemaChange: a store cannot bring an existing table to a model
	// without losing or inventing data (a type change, a dropped NOT NULL
	// column, another primary key); the error names the table, the column
	// and what to do.
	ErrSchemaChange = errors.New("offsync: schema change refused")
	// ErrRateLimited: the caller sent more than its rate allows. It wraps
	// ErrUnavailable, so it is retryable: the engine pauses and sends the
	// same ops again later, burning no attempt. Wire forms answer it with
	// their "retry later" form (REST 429 with Retry-After).
	ErrRateLimited = fmt.Errorf("offsync: rate limited: %w", ErrUnavailable)
)

// Retryable reports whether err means "try the same thing later": the network,
// an unavailable or rate-limiting server, an expired token, a cancelled call.
// Such failures never count toward an op's attempt budget.
func Retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnauthorized)
}

// Category classifies an error for events and logs.
type Category string

// The error categories.
const (
	CategoryNetwork  Category = "network"
	CategoryAuth     Category = "auth"
	CategoryServer   Category = "server"
	CategoryRejected Category = "rejected"
	CategoryStore    Category = "store"
	CategoryResolver Category = "resolver"
)

// Categorize returns the category of err.
func Categorize(err error) Category {
	switch {
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrForbidden):
		return CategoryAuth
	case errors.Is(err, ErrUnavailable):
		return CategoryNetwork
	case errors.Is(err, ErrRejected), errors.Is(err, ErrInvalid), errors.Is(err, ErrTooLarge),
		errors.Is(err, ErrIdempotencyKey), errors.Is(err, ErrUnknownKind):
		return CategoryRejected
	default:
		return CategoryServer
	}
}
