package rest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/transport/internal/wire"
	"github.com/offsync/offsync/internal/jsonscan"
	"github.com/offsync/offsync/tracing"
)

// Options configure a Client. The zero value (or nil) is usable.
type Options struct {
	// HTTPClient sends the requests; nil means a client of this package's
	// own with a pooled transport. Avoid an http.Client.Timeout when using
	// Subscribe: it would cut the event stream; use Timeout instead.
	HTTPClient *http.Client
	// TLS configures the https:// connections of the client's own HTTP
	// client (RootCAs: a custom CA); nil uses the system's roots. Ignored
	// when HTTPClient is set.
	TLS *tls.Config
	// Token returns the bearer token for a request. It is called with
	// refresh=false before each request and, once, with refresh=true after a
	// 401, after which the request is retried a single time. Nil sends no
	// Authorization header.
	Token func(ctx context.Context, refresh bool) (string, error)
	// Timeout bounds each request (for Subscribe: until the response headers
	// arrive). Zero means 30 seconds; negative means none.
	Timeout time.Duration
	// PageSize is the limit sent with a pull whose request has none; default 500.
	PageSize int
	// UserAgent is sent with every request; default "offsync-rest".
	UserAgent string
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger
	// ReconnectDelay is the first wait before re-opening a broken event
	// stream; it doubles up to 30 s. Default 250 ms.
	ReconnectDelay time.Duration
}

// Client is a core.Transport over the REST contract of docs/protocol.md. It is
// safe for concurrent use. It never retries by itself, except once after
// a token refresh: the engine is the retry layer.
type Client struct {
	base      string
	hc        *http.Client
	token     func(ctx context.Context, refresh bool) (string, error)
	timeout   time.Duration
	pageSize  int
	userAgent string
	log       *slog.Logger
	reconnect time.Duration

	mu     sync.Mutex
	probed *health
}

var (
	_ core.Transport  = (*Client)(nil)
	_ core.Getter     = (*Client)(nil)
	_ core.Subscriber = (*Client)(nil)
	_ core.Batcher    = (*Client)(nil)
	_ core.Pipeliner  = (*Client)(nil)
)

// health is what /health told the client.
type health struct {
	batch    bool
	events   bool
	maxBatch int
	maxLimit int
}

// perOpBatch is the batch size advertised for a backend served op by op.
const perOpBatch = 100

// maxResponse bounds a response body the client reads.
const maxResponse = 1 << 30

// NewClient returns a client for the authority at baseURL (scheme, host and
// an optional path prefix, e.g. "https://api.example.com/sync").
func NewClient(baseURL string, opts *Options) *Client {
	var o Options
	if opts != nil {
		o = *opts
	}
	c := &Client{
		base:      strings.TrimRight(baseURL, "/"),
		hc:        o.HTTPClient,
		token:     o.Token,
		timeout:   o.Timeout,
		pageSize:  o.PageSize,
		userAgent: o.UserAgent,
		log:       o.Logger,
		reconnect: o.ReconnectDelay,
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		if o.TLS != nil {
			tr.TLSClientConfig = o.TLS.Clone()
		}
		c.hc = &http.Client{Transport: tr}
	}
	if c.timeout == 0 {
		c.timeout = 30 * time.Second
	}
	if c.pageSize <= 0 {
		c.pageSize = 500
	}
	if c.userAgent == "" {
		c.userAgent = "offsync-rest"
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.reconnect <= 0 {
		c.reconnect = 250 * time.Millisecond
	}
	return c
}

// response is a fully read answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// errBody is the error object of an answer.
type errBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func (r *response) errInfo() errBody {
	var e errBody
	if json.Valid(r.body) {
		_ = json.Unmarshal(r.body, &e)
	}
	return e
}

func (r *response) describe() string {
	e := r.errInfo()
	switch {
	case e.Message != "" && e.Error != "":
		return fmt.Sprintf("%d %s: %s", r.status, e.Error, e.Message)
	case e.Message != "":
		return fmt.Sprintf("%d: %s", r.status, e.Message)
	case e.Error != "":
		return fmt.Sprintf("%d %s", r.status, e.Error)
	}
	txt := strings.TrimSpace(string(r.body))
	if len(txt) > 200 {
		txt = txt[:200]
	}
	if txt == "" {
		txt = http.StatusText(r.status)
	}
	return fmt.Sprintf("%d %s", r.status, txt)
}

// retryAfter reads Retry-After (seconds or an HTTP date).
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func (c *Client) url(path string, q url.Values) string {
	if len(q) == 0 {
		return c.base + path
	}
	return c.base + path + "?" + q.Encode()
}

func kindPath(kind string) string { return "/" + url.PathEscape(kind) }

func recordPath(kind, id string) string {
	return "/" + url.PathEscape(kind) + "/" + url.PathEscape(id)
}

// netErr classifies a failed round trip: always ErrUnavailable, plus the
// caller's context error when it was cancelled.
func netErr(ctx context.Context, what string, err error) error {
	if ce := ctx.Err(); ce != nil {
		return fmt.Errorf("rest: %s: %w (%w)", what, core.ErrUnavailable, ce)
	}
	return fmt.Errorf("rest: %s: %w: %v", what, core.ErrUnavailable, err)
}

// bearer asks the token source for a token.
func (c *Client) bearer(ctx context.Context, refresh bool) (string, error) {
	if c.token == nil {
		return "", nil
	}
	tok, err := c.token(ctx, refresh)
	if err != nil {
		if errors.Is(err, core.ErrUnavailable) || errors.Is(err, core.ErrUnauthorized) || errors.Is(err, core.ErrForbidden) {
			return "", fmt.Errorf("rest: token: %w", err)
		}
		return "", fmt.Errorf("rest: token: %w: %v", core.ErrUnauthorized, err)
	}
	return tok, nil
}

// newRequest builds a request carrying the token and common headers.
func (c *Client) newRequest(ctx context.Context, method, target string, body []byte, tok string, hdr map[string]string) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("rest: %s %s: %w: %v", method, target, core.ErrInvalid, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	tracing.InjectHeader(ctx, req.Header)
	return req, nil
}

// do sends one request and reads the whole answer. A 401 refreshes the
// token once and resends; every other status is returned to the caller.
// The error, if any, wraps core.ErrUnavailable (network, timeout) or comes
// from the token source.
func (c *Client) do(ctx context.Context, method, target string, body []byte, hdr map[string]string) (*response, error) {
	for attempt := 0; ; attempt++ {
		tok, err := c.bearer(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		resp, err := c.roundTrip(ctx, method, target, body, tok, hdr)
		if err != nil {
			return nil, err
		}
		if resp.status == http.StatusUnauthorized && attempt == 0 && c.token != nil {
			c.log.DebugContext(ctx, "rest: 401, refreshing the token", "method", method, "url", target)
			continue
		}
		return resp, nil
	}
}

func (c *Client) roundTrip(ctx context.Context, method, target string, body []byte, tok string, hdr map[string]string) (*response, error) {
	rctx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.newRequest(rctx, method, target, body, tok, hdr)
	if err != nil {
		return nil, err
	}
	hr, err := c.hc.Do(req)
	if err != nil {
		return nil, netErr(ctx, method+" "+target, err)
	}
	defer hr.Body.Close()
	b, err := io.ReadAll(io.LimitReader(hr.Body, maxResponse))
	if err != nil {
		return nil, netErr(ctx, "reading "+method+" "+target, err)
	}
	return &response{status: hr.StatusCode, header: hr.Header, body: b}, nil
}

// statusErr turns a non-2xx answer to a read into a classified error (the
// wire table shared by every transport).
func statusErr(what string, r *response) error {
	return fmt.Errorf("rest: %s: %w (%s)", what, wire.ErrorOf(r.status, r.errInfo().Error), r.describe())
}

// probe reads /health once and caches it. A backend without /health (any
// answer but 2xx, 5xx, 429 or a network failure) is served op by op and by
// timer; a transient failure is not cached.
func (c *Client) probe(ctx context.Context) (health, error) {
	c.mu.Lock()
	if c.probed != nil {
		h := *c.probed
		c.mu.Unlock()
		return h, nil
	}
	c.mu.Unlock()
	r, err := c.do(ctx, http.MethodGet, c.url("/health", nil), nil, nil)
	if err != nil {
		return health{}, err
	}
	if r.status == http.StatusTooManyRequests || r.status >= 500 {
		return health{}, statusErr("GET /health", r)
	}
	var h health
	if r.status == http.StatusOK {
		var hb struct {
			Capabilities []string `json:"capabilities"`
			MaxBatch     int      `json:"maxBatch"`
			MaxLimit     int      `json:"maxLimit"`
		}
		if err := json.Unmarshal(r.body, &hb); err != nil {
			c.log.WarnContext(ctx, "rest: /health is not the contract's JSON; serving op by op", "err", err)
		} else {
			for _, cp := range hb.Capabilities {
				switch cp {
				case "batch":
					h.batch = true
				case "events":
					h.events = true
				}
			}
			h.maxBatch, h.maxLimit = hb.MaxBatch, hb.MaxLimit
		}
	}
	if h.batch && h.maxBatch <= 0 {
		h.maxBatch = 1000
	}
	c.mu.Lock()
	c.probed = &h
	c.mu.Unlock()
	return h, nil
}

// BatchLimits implements core.Batcher: /health's maxBatch when the backend
// serves /batch, otherwise a size for op-by-op pushes.
func (c *Client) BatchLimits(ctx context.Context) (core.BatchLimits, error) {
	h, err := c.probe(ctx)
	if err != nil {
		return core.BatchLimits{}, err
	}
	if h.batch {
		return core.BatchLimits{MaxOps: h.maxBatch, MaxLimit: h.maxLimit}, nil
	}
	return core.BatchLimits{MaxOps: perOpBatch, MaxLimit: h.maxLimit}, nil
}

// Pull implements core.Transport. Within a walk it sends the page token;
// otherwise updatedSince and afterId from req.After.
func (c *Client) Pull(ctx context.Context, req core.PullRequest) (core.Page, error) {
	if req.Kind == "" {
		return core.Page{}, fmt.Errorf("rest: pull: %w: empty kind", core.ErrInvalid)
	}
	limit := req.Limit
	if limit <= 0 {
		limit = c.pageSize
	}
	q := url.Values{}
	q.Set("limit", strconv.Itoa(limit))
	q.Set("includeDeleted", "true")
	if req.PageToken != "" {
		q.Set("pageToken", req.PageToken)
	} else if !req.After.IsZero() {
		q.Set("updatedSince", core.FormatTime(req.After.UpdatedAt))
		if req.After.ID != "" {
			q.Set("afterId", req.After.ID)
		}
	}
	what := "pull " + req.Kind
	r, err := c.do(ctx, http.MethodGet, c.url(kindPath(req.Kind), q), nil, nil)
	if err != nil {
		return core.Page{}, err
	}
	if r.status != http.StatusOK {
		if r.status == http.StatusBadRequest && req.PageToken != "" {
			return core.Page{}, fmt.Errorf("rest: %s: %w (%s)", what, core.ErrBadCursor, r.describe())
		}
		if r.status == http.StatusNotFound {
			// GET /{kind} answering 404 means the backend does not serve the kind.
			return core.Page{}, fmt.Errorf("rest: %s: %w (%s)", what, core.ErrUnknownKind, r.describe())
		}
		return core.Page{}, statusErr(what, r)
	}
	return decodePage(req.Kind, r.body)
}

// decodePage parses a pull answer: {"items":[...],"nextPageToken":T|null,
// "remaining":N}, in one pass over the body with jsontext (which checks the
// syntax as it goes). The records' data share one buffer. An answer that is
// not JSON is core.ErrUnavailable (a broken server); one that is JSON but
// not a page is core.ErrInvalid.
func decodePage(kind string, body []byte) (core.Page, error) {
	bad := func(why string) (core.Page, error) {
		return core.Page{}, fmt.Errorf("rest: pull %s: %w: %s", kind, core.ErrInvalid, why)
	}
	notJSON := func() (core.Page, error) {
		return core.Page{}, fmt.Errorf("rest: pull %s: %w: the answer is not JSON", kind, core.ErrUnavailable)
	}
	dec := jsonscan.NewDecoder(body)
	tok, err := dec.ReadToken()
	if err != nil {
		return notJSON()
	}
	if tok.Kind() != '{' {
		if tok.Kind() == '[' {
			for dec.PeekKind() != ']' {
				if dec.SkipValue() != nil {
					return notJSON()
				}
			}
			_, err = dec.ReadToken()
		}
		if err != nil || jsonscan.End(dec) != nil {
			return notJSON()
		}
		return bad("the answer is not {\"items\":[...]}")
	}
	page := core.Page{Remaining: -1}
	arena := make([]byte, 0, len(body))
	var haveItems bool
	for dec.PeekKind() != '}' {
		key, err := dec.ReadValue()
		if err != nil {
			return notJSON()
		}
		switch keyName(key) {
		case "items":
			tok, err := dec.ReadToken()
			switch {
			case err != nil:
				return notJSON()
			case tok.Kind() == 'n':
				continue
			case tok.Kind() != '[':
				return bad("the answer is not {\"items\":[...]}")
			}
			haveItems = true
			// '{' bounds the element count from above.
			page.Records = make([]core.Record, 0, min(bytes.Count(body, []byte{'{'}), 1<<16))
			for dec.PeekKind() != ']' {
				rec, err := jsonscan.ReadRecord(dec, kind, &arena)
				if errors.Is(err, jsonscan.ErrSyntax) {
					return notJSON()
				}
				if err != nil {
					return core.Page{}, fmt.Errorf("rest: pull %s: %w", kind, err)
				}
				page.Records = append(page.Records, rec)
			}
			if _, err := dec.ReadToken(); err != nil {
				return notJSON()
			}
		case "nextPageToken":
			tok, err := dec.ReadToken()
			switch {
			case err != nil:
				return notJSON()
			case tok.Kind() == '"':
				page.NextPageToken = tok.String()
			case tok.Kind() != 'n':
				return bad("nextPageToken must be a string or null")
			}
		case "remaining":
			tok, err := dec.ReadToken()
			switch {
			case err != nil:
				return notJSON()
			case tok.Kind() == 'n':
			default:
				n, err := strconv.ParseInt(tok.String(), 10, 64)
				if tok.Kind() != '0' || err != nil || n < 0 {
					return bad("remaining must be a count")
				}
				page.Remaining = n
			}
		default:
			if dec.SkipValue() != nil {
				return notJSON()
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil || jsonscan.End(dec) != nil {
		return notJSON()
	}
	if !haveItems {
		return bad("the answer has no items")
	}
	return page, nil
}

// Get implements core.Getter.
func (c *Client) Get(ctx context.Context, kind, id string) (core.Record, error) {
	what := "get " + kind + "/" + id
	r, err := c.do(ctx, http.MethodGet, c.url(recordPath(kind, id), nil), nil, nil)
	if err != nil {
		return core.Record{}, err
	}
	if r.status != http.StatusOK {
		return core.Record{}, statusErr(what, r)
	}
	if !json.Valid(r.body) {
		return core.Record{}, fmt.Errorf("rest: %s: %w: the answer is not JSON", what, core.ErrUnavailable)
	}
	var arena []byte
	rec, err := decodeRecord(kind, r.body, &arena)
	if err != nil {
		return core.Record{}, fmt.Errorf("rest: %s: %w", what, err)
	}
	return rec, nil
}

// pushDepth is how many pushes the engine keeps in flight: with two, the
// next batch is on its way (on a second keep-alive connection) while the
// server applies one, so the server does not wait for the replica between
// batches.
const pushDepth = 2

// PushDepth implements core.Pipeliner.
func (c *Client) PushDepth() int { return pushDepth }
