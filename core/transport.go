package core

import (
	"context"
	"time"
)

// PullRequest asks for one page of one kind's change feed, ordered by
// (UpdatedAt, ID). A walk starts after After (the zero Cursor is the start of
// the feed) and continues with the PageToken of the previous page.
type PullRequest struct {
	Kind      string
	After     Cursor
	PageToken string // opaque; set only within one walk
	Limit     int    // 0 means the transport's default
}

// Page is one page of a kind's feed. Deleted records are included as
// tombstones. NextPageToken is empty when no rows remain; Remaining counts the
// rows after this page when the authority knows it, and is -1 otherwise.
type Page struct {
	Records       []Record
	NextPageToken string
	Remaining     int64
}

// PushStatus is the authority's answer to one op.
type PushStatus uint8

// The push statuses.
const (
	StatusApplied  PushStatus = iota + 1 // Record is the stored record with its new UpdatedAt
	StatusConflict                       // Record is the current record (base differs, or a create over an existing row)
	StatusNotFound                       // no such record, or outside the caller's scope
	StatusRejected                       // refused; Permanent says whether a retry could ever help
	StatusSkipped                        // an earlier op for the same record in the batch was not applied
	StatusRetry                          // not processed; try later without burning an attempt
)

var statusNames = [...]string{"", "applied", "conflict", "not_found", "rejected", "skipped", "retry"}

func (s PushStatus) String() string {
	if int(s) < len(statusNames) && s > 0 {
		return statusNames[s]
	}
	return "unknown"
}

// PushResult answers one op of a Push, in the order of the ops.
type PushResult struct {
	OpID       string
	Status     PushStatus
	Record     *Record // Applied: the stored record; Conflict: the current one
	Reason     string  // Rejected, Retry: why
	Permanent  bool    // Rejected: never retry automatically
	RetryAfter time.Duration
}

// Transport is the remote authority as seen from a replica. Every wire driver
// implements it on the client side; server.Service implements it in-process.
//
// Pull returns one page; it fails with ErrResetRequired when the authority can
// no longer serve the cursor, with ErrBadCursor for a token it cannot read,
// and with an error wrapping ErrUnavailable when the caller should retry
// later. Push returns exactly one result per op, in order; an error from Push
// itself means no op is known to be processed (the engine re-sends them with
// the same OpIDs, which the authority answers idempotently).
type Transport interface {
	Pull(ctx context.Context, req PullRequest) (Page, error)
	Push(ctx context.Context, ops []Op) ([]PushResult, error)
}

// Notice says "Kind has changes up to (UpdatedAt, ID)". A notice with a zero
// UpdatedAt (and no ID) says only "Kind has changes": an authority sends it
// where naming the record would show the subscriber one outside its scope,
// and the replica pulls the kind. Gap marks a notice sent after the stream
// was interrupted: notices may have been missed, and the replica should pull
// every subscribed kind.
type Notice struct {
	Kind      string
	UpdatedAt time.Time
	ID        string
	Gap       bool
}

// Subscriber is a Transport that can stream change notices. The channel is
// closed when ctx is done or the stream fails for good; a transport that
// reconnects sends a Notice with Gap set after each reconnect. The
// subscription is in force when Subscribe returns, so a pull made after it
// misses nothing.
type Subscriber interface {
	Subscribe(ctx context.Context, kinds []string) (<-chan Notice, error)
}

// Getter is a Transport that can fetch one record, tombstones included.
// A missing or out-of-scope record is ErrNotFound.
type Getter interface {
	Get(ctx context.Context, kind, id string) (Record, error)
}

// BatchLimits describes how much one call may carry: the ops of one Push,
// and the rows of one page (MaxLimit; 0 when unknown: a larger Limit is
// clamped by the authority anyway).
type BatchLimits struct {
	MaxOps   int
	MaxLimit int
}

// Batcher is a Transport that advertises its batch limits.
type Batcher interface {
	BatchLimits(ctx context.Context) (BatchLimits, error)
}

// Pipeliner is a Transport whose Push calls may overlap: it carries several
// at once over one connection (a multiplexed socket, a stream per call) and
// answers each on its own. PushDepth is how many pushes the engine may have
// in flight at once (values below 2 mean one at a time, as without the
// interface; the engine caps it at 8). The engine only overlaps pushes of
// distinct records, so the order in which the authority applies them does
// not matter.
type Pipeliner interface {
	PushDepth() int
}

// PageStreamer is a Transport that streams the pages of one walk: the
// authority sends page after page over one call, without a request per
// page, so that it reads the next page while the replica decodes and
// applies the last one.
//
// PullPages starts the walk req describes (req.PageToken is empty: a walk
// begins at req.After) and calls yield with each page, in feed order, until
// a page with no NextPageToken (or no records) has been yielded; then it
// returns nil. It returns yield's error as soon as yield fails, ctx's when
// ctx ends, and the errors Pull would (ErrResetRequired, ErrBadCursor,
// ErrUnavailable, …) when the walk fails, after the pages already yielded.
// yield is called from one goroutine at a time; it blocks while the caller
// is busy, and a transport lets that hold back the authority (flow
// control) rather than buffer the walk. A page yielded is what Pull would
// have answered for the same position: the two are interchangeable.
type PageStreamer interface {
	PullPages(ctx context.Context, req PullRequest, yield func(Page) error) error
}

// PullEach walks the feed req begins page after page with t's Pull, each
// request sent once the previous page has named its token, and hands each
// page to yield: PullPages for a transport that cannot stream (a server
// without streams, an authority in process). It ends as PullPages does.
func PullEach(ctx context.Context, t Transport, req PullRequest, yield func(Page) error) error {
	for {
		page, err := t.Pull(ctx, req)
		if err != nil {
			return err
		}
		if err := yield(page); err != nil {
			return err
		}
		if page.NextPageToken == "" || len(page.Records) == 0 {
			return nil
		}
		last := page.Records[len(page.Records)-1]
		req.After = Cursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
		req.PageToken = page.NextPageToken
	}
}

// Principal is an authenticated caller of the authority.
type Principal struct {
	ID    string
	Attrs map[string]string
}

type principalKey struct{}

// WithPrincipal returns a context carrying p; the server half of a transport
// puts the authenticated principal here before calling the authority.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx and whether there was one.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// Authenticator is implemented by an authority that turns a bearer token
// into a principal. A transport's server half calls it for every request;
// a refused token is ErrUnauthorized.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}
