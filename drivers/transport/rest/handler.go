package rest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/server"
	"github.com/offsync/offsync/tracing"
)

// HandlerOptions configure a Handler. The zero value (or nil) is usable.
type HandlerOptions struct {
	// MaxBody bounds a request body; default 4 MiB. Larger is 413.
	MaxBody int64
	// MaxBatch bounds the ops of one POST /batch when the transport is not a
	// core.Batcher; default 1000.
	MaxBatch int
	// MaxLimit is the page cap reported by /health; a larger limit is
	// clamped to it before the transport (which may clamp further) sees it.
	// Default 1000; keep it equal to the authority's.
	MaxLimit int
	// Heartbeat is the interval of comment lines on /events; default 15 s.
	Heartbeat time.Duration
	// RetryAfter is sent with a 503; default 1 s.
	RetryAfter time.Duration
	// Logger receives server errors; nil discards them.
	Logger *slog.Logger
	// Served, when set, lists every wire form of this server and where it
	// is served; /health reports it as "transports" for discovery.
	Served func() map[string]string
}

// Handler serves the REST contract of docs/protocol.md for any core.Transport.
type Handler struct {
	t          core.Transport
	getter     core.Getter
	sub        core.Subscriber
	batcher    core.Batcher
	auth       core.Authenticator
	limits     *server.InputLimits // the authority's payload limits, when it states them
	maxBody    int64
	maxBatch   int
	maxLimit   int
	heartbeat  time.Duration
	retryAfter string
	log        *slog.Logger
	served     func() map[string]string
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns an http.Handler serving t: GET /{kind} (pull),
// GET/PUT/DELETE /{kind}/{id}, POST /batch, GET /events (when t is a
// core.Subscriber) and GET /health. When t is a core.Authenticator, the
// bearer token of every request but /health (or "" without an
// Authorization header) goes through it, a refusal is 401, and the
// principal travels to t in the request's context (core.WithPrincipal).
// A PUT or DELETE whose one-op push t fails with core.ErrUnknownKind (as
// server.Service does) is 404 {"error":"unknown_kind"}; inside POST /batch
// such an op is answered 422 rejected, like any permanent refusal.
// Mount it under a prefix with http.StripPrefix.
func NewHandler(t core.Transport, opts *HandlerOptions) http.Handler {
	var o HandlerOptions
	if opts != nil {
		o = *opts
	}
	h := &Handler{t: t, maxBody: o.MaxBody, maxBatch: o.MaxBatch, maxLimit: o.MaxLimit,
		heartbeat: o.Heartbeat, log: o.Logger, served: o.Served}
	h.getter, _ = t.(core.Getter)
	h.sub, _ = t.(core.Subscriber)
	h.batcher, _ = t.(core.Batcher)
	h.auth, _ = t.(core.Authenticator)
	if l, ok := t.(interface{ InputLimits() server.InputLimits }); ok {
		lim := l.InputLimits()
		h.limits = &lim
	}
	if h.maxBody <= 0 {
		h.maxBody = 4 << 20
	}
	if h.maxBatch <= 0 {
		h.maxBatch = 1000
	}
	if h.maxLimit <= 0 {
		h.maxLimit = 1000
	}
	if h.heartbeat <= 0 {
		h.heartbeat = 15 * time.Second
	}
	ra := o.RetryAfter
	if ra <= 0 {
		ra = time.Second
	}
	h.retryAfter = strconv.Itoa(int(math.Ceil(ra.Seconds())))
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// reserved are the names that are routes of this or another wire form of
// the same server, never kinds.
func reserved(kind string) bool { return core.ReservedKind(kind) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	path = strings.TrimPrefix(path, "/")
	if path == "health" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.methodNotAllowed(w, "GET")
			return
		}
		h.health(w, r)
		return
	}
	ctx, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	r = r.WithContext(ctx)
	rawKind, rawID, hasID := strings.Cut(path, "/")
	kind, err := url.PathUnescape(rawKind)
	if err != nil || kind == "" || !utf8.ValidString(kind) {
		writeError(w, http.StatusNotFound, "not_found", "no such route; use /{kind} or /{kind}/{id}")
		return
	}
	if !hasID {
		switch kind {
		case "batch":
			if r.Method != http.MethodPost {
				h.methodNotAllowed(w, "POST")
				return
			}
			h.batch(w, r)
			return
		case "events":
			if r.Method != http.MethodGet {
				h.methodNotAllowed(w, "GET")
				return
			}
			h.events(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.methodNotAllowed(w, "GET")
			return
		}
		h.pull(w, r, kind)
		return
	}
	if reserved(kind) {
		writeError(w, http.StatusNotFound, "unknown_kind", fmt.Sprintf("%q is a reserved name, not a kind", kind))
		return
	}
	if strings.Contains(rawID, "/") {
		writeError(w, http.StatusNotFound, "not_found", "no such route; escape '/' in an id as %2F")
		return
	}
	id, err := url.PathUnescape(rawID)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "the id is not a valid path segment: "+err.Error())
		return
	}
	if id == "" || !utf8.ValidString(id) {
		writeError(w, http.StatusBadRequest, "bad_request", "the id must be non-empty UTF-8")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		h.get(w, r, kind, id)
	case http.MethodPut:
		h.put(w, r, kind, id)
	case http.MethodDelete:
		h.del(w, r, kind, id)
	default:
		h.methodNotAllowed(w, "GET, PUT, DELETE")
	}
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "allowed: "+allow)
}

// authenticate puts the caller's principal in the context when the
// transport authenticates; a missing or refused token is 401.
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request) (context.Context, bool) {
	ctx := server.WithTransport(tracing.ExtractHeader(r.Context(), r.Header), "rest")
	if h.auth == nil {
		return ctx, true
	}
	// A request without a token is authenticated as "": the authority
	// decides whether anonymous callers are welcome.
	tok, err := server.ParseBearer(r.Header.Values("Authorization"))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="offsync"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "the Authorization header must be `Bearer <token>`")
		return ctx, false
	}
	p, err := h.auth.Authenticate(ctx, tok)
	if err != nil {
		if errors.Is(err, core.ErrUnavailable) {
			h.writeErr(w, r, err)
			return ctx, false
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="offsync", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "the token was refused")
		return ctx, false
	}
	return core.WithPrincipal(ctx, p), true
}

// writeError writes {"error":code,"message":msg}.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	b := make([]byte, 0, 64+len(msg))
	b = append(b, `{"error":`...)
	b = appendJSONString(b, code)
	if msg != "" {
		b = append(b, `,"message":`...)
		b = appendJSONString(b, msg)
	}
	b = append(b, "}\n"...)
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeErr answers err with its status; 5xx details stay in the log.
func (h *Handler) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	status, code := wire.ErrorStatus(err)
	msg := err.Error()
	switch status {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(server.RetryAfter(err).Seconds())))))
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", h.retryAfter)
		h.log.WarnContext(r.Context(), "rest: unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
	case http.StatusInternalServerError:
		h.log.ErrorContext(r.Context(), "rest: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error"
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="offsync"`)
	}
	writeError(w, status, code, msg)
}

// readBody reads a request body within MaxBody.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.ContentLength > h.maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large",
			fmt.Sprintf("the body is over %d bytes", h.maxBody))
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large",
				fmt.Sprintf("the body is over %d bytes", h.maxBody))
			return nil, false
		}
		writeError(w, http.StatusBadRequest, "bad_request", "reading the body: "+err.Error())
		return nil, false
	}
	return b, true
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	maxBatch := h.maxBatch
	if h.batcher != nil {
		if bl, err := h.batcher.BatchLimits(r.Context()); err == nil && bl.MaxOps > 0 {
			maxBatch = bl.MaxOps
		}
	}
	b := make([]byte, 0, 128)
	b = append(b, `{"status":"ok","protocol":1,"capabilities":["batch"`...)
	if h.sub != nil {
		b = append(b, `,"events"`...)
	}
	b = append(b, `],"maxBatch":`...)
	b = strconv.AppendInt(b, int64(maxBatch), 10)
	b = append(b, `,"maxLimit":`...)
	b = strconv.AppendInt(b, int64(h.maxLimit), 10)
	if h.served != nil {
		if served := h.served(); len(served) > 0 {
			names := make([]string, 0, len(served))
			for name := range served {
				names = append(names, name)
			}
			sort.Strings(names)
			b = append(b, `,"transports":{`...)
			for i, name := range names {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, name)
				b = append(b, ':')
				b = appendJSONString(b, served[name])
			}
			b = append(b, '}')
		}
	}
	b = append(b, "}\n"...)
	writeJSON(w, http.StatusOK, b)
}

// pullRequest turns the query of GET /{kind} into a core.PullRequest.
// includeDeleted reports whether tombstones are wanted.
func (h *Handler) pullRequest(kind string, q url.Values) (req core.PullRequest, includeDeleted bool, err error) {
	req.Kind = kind
	one := func(name string) (string, bool, error) {
		v, ok := q[name]
		if !ok {
			return "", false, nil
		}
		if len(v) != 1 {
			return "", false, fmt.Errorf("%w: %s given %d times", core.ErrInvalid, name, len(v))
		}
		return v[0], true, nil
	}
	if s, ok, err := one("limit"); err != nil {
		return req, false, err
	} else if ok {
		n, perr := strconv.ParseInt(s, 10, 64)
		var ne *strconv.NumError
		switch {
		case perr != nil && errors.As(perr, &ne) && ne.Err == strconv.ErrRange && !strings.HasPrefix(s, "-"):
			n = math.MaxInt64
		case perr != nil:
			return req, false, fmt.Errorf("%w: limit %q is not a number", core.ErrInvalid, s)
		case n <= 0:
			return req, false, fmt.Errorf("%w: limit must be positive, got %d", core.ErrInvalid, n)
		}
		req.Limit = int(min(n, int64(h.maxLimit)))
	}
	if s, ok, err := one("includeDeleted"); err != nil {
		return req, false, err
	} else if ok {
		switch s {
		case "true", "1":
			includeDeleted = true
		case "false", "0":
		default:
			return req, false, fmt.Errorf("%w: includeDeleted must be true or false, got %q", core.ErrInvalid, s)
		}
	}
	tok, hasTok, err := one("pageToken")
	if err != nil {
		return req, false, err
	}
	if hasTok && tok == "" {
		return req, false, fmt.Errorf("%w: empty pageToken", core.ErrBadCursor)
	}
	since, hasSince, err := one("updatedSince")
	if err != nil {
		return req, false, err
	}
	after, hasAfter, err := one("afterId")
	if err != nil {
		return req, false, err
	}
	if hasSince && since != "" {
		t, err := core.ParseTime(since)
		if err != nil {
			return req, false, fmt.Errorf("updatedSince: %w", err)
		}
		req.After.UpdatedAt = t
	}
	if hasAfter && after != "" {
		if req.After.UpdatedAt.IsZero() {
			return req, false, fmt.Errorf("%w: afterId needs updatedSince", core.ErrInvalid)
		}
		if err := core.CheckID(after); err != nil {
			return req, false, fmt.Errorf("afterId: %w", err)
		}
		req.After.ID = after
	}
	if hasTok {
		// The token carries the walk's position; a client of the per-op form may still send
		// updatedSince with it (checked above, then ignored).
		req.After = core.Cursor{}
		req.PageToken = tok
	}
	return req, includeDeleted, nil
}

// parseQuery parses a request's query string; a malformed one is an error
// wrapping core.ErrInvalid (r.URL.Query drops what it cannot parse, so
// pageToken=%zz would silently serve the first page).
func parseQuery(raw string) (url.Values, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed query string: %v", core.ErrInvalid, err)
	}
	return q, nil
}

// parsePullQuery turns the raw query of GET /{kind} into a pull request.
func (h *Handler) parsePullQuery(kind, rawQuery string) (core.PullRequest, bool, error) {
	q, err := parseQuery(rawQuery)
	if err != nil {
		return core.PullRequest{}, false, err
	}
	return h.pullRequest(kind, q)
}

// checkTarget refuses, before anything reaches the authority, a kind or id
// that no authority accepts (core.CheckID, core.MaxKindBytes), so that a
// PUT or DELETE of one is a 400 rather than the op's rejection.
func checkTarget(kind, id string) error {
	if len(kind) > core.MaxKindBytes || strings.IndexByte(kind, 0) >= 0 {
		return fmt.Errorf("%w: a kind has at most %d bytes and no NUL", core.ErrInvalid, core.MaxKindBytes)
	}
	return core.CheckID(id)
}

func (h *Handler) pull(w http.ResponseWriter, r *http.Request, kind string) {
	req, includeDeleted, err := h.parsePullQuery(kind, r.URL.RawQuery)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	page, err := h.t.Pull(r.Context(), req)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	bw := bufio.NewWriterSize(w, 32<<10)
	buf := make([]byte, 0, 1024)
	buf = append(buf, `{"items":[`...)
	first := true
	for i := range page.Records {
		rec := &page.Records[i]
		if !includeDeleted && rec.Deleted() {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendRecord(buf, rec)
		if len(buf) >= 16<<10 {
			if _, err := bw.Write(buf); err != nil {
				return
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, `],"nextPageToken":`...)
	if page.NextPageToken == "" {
		buf = append(buf, "null"...)
	} else {
		buf = appendJSONString(buf, page.NextPageToken)
	}
	if page.Remaining >= 0 {
		buf = append(buf, `,"remaining":`...)
		buf = strconv.AppendInt(buf, page.Remaining, 10)
	}
	buf = append(buf, "}\n"...)
	_, _ = bw.Write(buf)
	_ = bw.Flush()
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, kind, id string) {
	if h.getter == nil {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "this authority cannot fetch one record")
		return
	}
	rec, err := h.getter.Get(r.Context(), kind, id)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	b := appendRecord(make([]byte, 0, len(rec.Data)+128), &rec)
	writeJSON(w, http.StatusOK, append(b, '\n'))
}

// opHeaders reads the idempotency key and a force header. A missing key
// means no idempotency: the op goes with an empty OpID, and the authority
// keeps no answer for it (no one could ever replay it).
func opHeaders(r *http.Request, forceHeader string) (opID string, force bool, err error) {
	keys := r.Header.Values("X-Idempotency-Key")
	switch len(keys) {
	case 0:
	case 1:
		opID = keys[0]
		if err := wire.CheckOpID(opID); err != nil {
			return "", false, fmt.Errorf("X-Idempotency-Key: %w", err)
		}
	default:
		return "", false, fmt.Errorf("%w: X-Idempotency-Key given %d times", core.ErrInvalid, len(keys))
	}
	fv := r.Header.Values(forceHeader)
	switch {
	case len(fv) == 0:
	case len(fv) > 1:
		return "", false, fmt.Errorf("%w: %s given %d times", core.ErrInvalid, forceHeader, len(fv))
	case strings.EqualFold(strings.TrimSpace(fv[0]), "true"):
		force = true
	case strings.EqualFold(strings.TrimSpace(fv[0]), "false"):
	default:
		return "", false, fmt.Errorf("%w: %s must be true or false, got %q", core.ErrInvalid, forceHeader, fv[0])
	}
	return opID, force, nil
}

func (h *Handler) put(w http.ResponseWriter, r *http.Request, kind, id string) {
	if err := checkTarget(kind, id); err != nil {
		h.writeErr(w, r, err)
		return
	}
	opID, force, err := opHeaders(r, "X-Force-Update")
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	f, err := splitBody(body, id)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	if err := h.checkPayload(f.payload); err != nil {
		h.writeErr(w, r, err)
		return
	}
	op := core.Op{OpID: opID, Kind: kind, ID: id, Type: core.OpUpsert, Payload: f.payload,
		BaseUpdatedAt: f.base, EditedAt: f.edited, Force: force}
	h.pushOne(w, r, op)
}

// checkPayload holds a PUT's payload to the authority's limits (when it
// states them, as server.Service does), so that breaking one is a 400 or a
// 413 rather than the op's rejection (422). Inside POST /batch the authority
// answers each op itself.
func (h *Handler) checkPayload(payload []byte) error {
	if h.limits == nil {
		return nil
	}
	if len(payload) > h.limits.MaxRecordBytes {
		return fmt.Errorf("%w: a payload of %d bytes, at most %d", core.ErrTooLarge, len(payload), h.limits.MaxRecordBytes)
	}
	return core.CheckPayload(payload, h.limits.MaxDepth)
}

func (h *Handler) del(w http.ResponseWriter, r *http.Request, kind, id string) {
	if err := checkTarget(kind, id); err != nil {
		h.writeErr(w, r, err)
		return
	}
	opID, force, err := opHeaders(r, "X-Force-Delete")
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	op := core.Op{OpID: opID, Kind: kind, ID: id, Type: core.OpDelete, Force: force}
	q, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	if v, ok := q["_baseUpdatedAt"]; ok {
		if len(v) != 1 {
			writeError(w, http.StatusBadRequest, "bad_request", "_baseUpdatedAt given more than once")
			return
		}
		if v[0] != "" {
			t, err := core.ParseTime(v[0])
			if err != nil {
				h.writeErr(w, r, fmt.Errorf("_baseUpdatedAt: %w", err))
				return
			}
			op.BaseUpdatedAt = t
		}
	}
	h.pushOne(w, r, op)
}

// pushOne pushes a single op and answers it in the per-op form (PUT/DELETE).
func (h *Handler) pushOne(w http.ResponseWriter, r *http.Request, op core.Op) {
	res, err := h.t.Push(r.Context(), []core.Op{op})
	if err == nil && len(res) != 1 {
		err = fmt.Errorf("rest: the authority answered %d results for 1 op", len(res))
	}
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	pr := &res[0]
	b := make([]byte, 0, 256)
	var status int
	switch pr.Status {
	case core.StatusApplied:
		if pr.Record == nil {
			h.writeErr(w, r, fmt.Errorf("rest: the authority applied %s/%s without a record", op.Kind, op.ID))
			return
		}
		status = http.StatusOK
		b = appendRecord(b, pr.Record)
	case core.StatusRetry:
		if pr.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(pr.RetryAfter.Seconds()))))
		} else {
			w.Header().Set("Retry-After", h.retryAfter)
		}
		fallthrough
	default:
		status = wire.ResultStatus(pr.Status)
		b = appendResultBody(b, pr)
	}
	writeJSON(w, status, append(b, '\n'))
}

// appendResultBody appends the members after "status" of a non-applied
// answer (without braces: the per-op body wraps them in {}).
func appendResultMembers(b []byte, pr *core.PushResult) []byte {
	switch pr.Status {
	case core.StatusConflict:
		b = append(b, `"error":"conflict"`...)
		if pr.Record != nil {
			b = append(b, `,"current":`...)
			b = appendRecord(b, pr.Record)
		}
	case core.StatusNotFound:
		b = append(b, `"error":"not_found"`...)
	case core.StatusRejected:
		b = append(b, `"error":"rejected"`...)
		if pr.Reason != "" {
			b = append(b, `,"message":`...)
			b = appendJSONString(b, pr.Reason)
		}
		if !pr.Permanent {
			b = append(b, `,"permanent":false`...)
		}
	case core.StatusSkipped:
		b = append(b, `"error":"skipped"`...)
	case core.StatusRetry:
		b = append(b, `"error":"unavailable"`...)
		if pr.Reason != "" {
			b = append(b, `,"message":`...)
			b = appendJSONString(b, pr.Reason)
		}
		if pr.RetryAfter > 0 {
			b = append(b, `,"retryAfter":`...)
			b = strconv.AppendFloat(b, pr.RetryAfter.Seconds(), 'f', -1, 64)
		}
	default:
		b = append(b, `"error":"internal"`...)
	}
	return b
}

func appendResultBody(b []byte, pr *core.PushResult) []byte {
	b = append(b, '{')
	b = appendResultMembers(b, pr)
	return append(b, '}')
}

func (h *Handler) batch(w http.ResponseWriter, r *http.Request) {
	body, ok := h.readBody(w, r)
	if !ok {
		return
	}
	maxOps := h.maxBatch
	if h.batcher != nil {
		if bl, err := h.batcher.BatchLimits(r.Context()); err == nil && bl.MaxOps > 0 {
			maxOps = bl.MaxOps
		}
	}
	ops, err := decodeBatch(body, maxOps)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	var res []core.PushResult
	if len(ops) > 0 {
		res, err = h.t.Push(r.Context(), ops)
		if len(ops) == 1 && errors.Is(err, core.ErrUnknownKind) {
			// An authority refuses a lone op of an unknown kind as a whole
			// (server.Service does, so that a PUT can answer 404); inside a
			// batch it is the op's own permanent rejection, as with more ops.
			res, err = []core.PushResult{{OpID: ops[0].OpID, Status: core.StatusRejected, Permanent: true, Reason: err.Error()}}, nil
		}
		if err == nil && len(res) != len(ops) {
			err = fmt.Errorf("rest: the authority answered %d results for %d ops", len(res), len(ops))
		}
		if err != nil {
			h.writeErr(w, r, err)
			return
		}
	}
	b := make([]byte, 0, 64+len(ops)*160)
	b = append(b, `{"results":[`...)
	for i := range res {
		pr := &res[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"opId":`...)
		b = appendJSONString(b, ops[i].OpID)
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(wire.ResultStatus(pr.Status)), 10)
		b = append(b, ',')
		if pr.Status == core.StatusApplied {
			b = append(b, `"record":`...)
			if pr.Record != nil {
				b = appendRecord(b, pr.Record)
			} else {
				b = append(b, "null"...)
			}
		} else {
			b = appendResultMembers(b, pr)
		}
		b = append(b, '}')
	}
	b = append(b, "]}\n"...)
	writeJSON(w, http.StatusOK, b)
}

// endExpired ends an event stream whose caller's token expired with an
// "unauthorized" event; the client reconnects and, answered 401, asks its
// token source for a new token.
func (h *Handler) endExpired(ctx context.Context, w http.ResponseWriter, rc *http.ResponseController) {
	if !server.Expired(ctx) {
		return
	}
	_, _ = io.WriteString(w, "event: unauthorized\ndata: {\"error\":\"unauthorized\",\"message\":\"the token expired\"}\n\n")
	_ = rc.Flush()
}

// events serves GET /events as server-sent events; without kinds= the
// transport decides what "every kind" is. The subscription is
// made before the headers are written, so a client that pulls after seeing
// them misses nothing.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	if h.sub == nil {
		writeError(w, http.StatusNotFound, "not_found", "this authority does not stream events")
		return
	}
	query, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	var kinds []string
	for _, v := range query["kinds"] {
		for k := range strings.SplitSeq(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				if reserved(k) {
					writeError(w, http.StatusNotFound, "unknown_kind", fmt.Sprintf("%q is a reserved name, not a kind", k))
					return
				}
				kinds = append(kinds, k)
			}
		}
	}
	// The stream ends when the caller's token expires (server.StreamContext).
	ctx, cancel := server.StreamContext(r.Context())
	defer cancel()
	ch, err := h.sub.Subscribe(ctx, kinds)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, ": subscribed\n\n"); err != nil {
		return
	}
	if err := rc.Flush(); err != nil {
		return
	}
	tick := time.NewTicker(h.heartbeat)
	defer tick.Stop()
	buf := make([]byte, 0, 256)
	for {
		select {
		case <-ctx.Done():
			h.endExpired(ctx, w, rc)
			return
		case n, ok := <-ch:
			if !ok {
				h.endExpired(ctx, w, rc)
				return
			}
			buf = append(buf[:0], `data: {"kind":`...)
			buf = appendJSONString(buf, n.Kind)
			if !n.UpdatedAt.IsZero() {
				buf = append(buf, `,"updated_at":`...)
				buf = appendTime(buf, n.UpdatedAt)
			}
			if n.ID != "" {
				buf = append(buf, `,"id":`...)
				buf = appendJSONString(buf, n.ID)
			}
			if n.Gap {
				buf = append(buf, `,"gap":true`...)
			}
			buf = append(buf, "}\n\n"...)
			if _, err := w.Write(buf); err != nil {
				return
			}
		case <-tick.C:
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
