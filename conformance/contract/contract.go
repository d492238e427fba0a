package contract

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/offsync/offsync/core"
)

// Config names the server to check.
type Config struct {
	// URL is the server's base URL (scheme, host, optional path prefix).
	URL string
	// Token is the bearer token of the checks ("" sends none).
	Token string
	// Token2 is a second principal's token, for scope invisibility; the
	// check is skipped without it. Its principal must not see Token's rows.
	Token2 string
	// Kind is the kind the checks write to (default "conformance").
	Kind string
	// UnknownKind is a kind the server does not serve (default
	// "offsync_unknown_kind"); the check is skipped when the server serves it.
	UnknownKind string
	// TooLarge is the size of the body sent to provoke a 413 (default 5 MiB).
	TooLarge int
	// HTTPClient sends the requests (default: one with a 30 s timeout).
	HTTPClient *http.Client
}

// Status is a check's outcome.
type Status string

// The outcomes.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Result is the outcome of one check.
type Result struct {
	Name   string
	Status Status
	Detail string
}

// String renders r as one line: "PASS name: detail".
func (r Result) String() string { return fmt.Sprintf("%s %s: %s", r.Status, r.Name, r.Detail) }

// Failed counts the failed checks.
func Failed(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Status == Fail {
			n++
		}
	}
	return n
}

// Run runs every check against cfg.URL, calling report (when set) as each
// one ends, and returns the results. Its error is only for a bad Config
// (wrapping core.ErrInvalid); a server that does not answer fails checks.
func Run(ctx context.Context, cfg Config, report func(Result)) ([]Result, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("contract: url %q: want http(s)://host[/prefix]: %w", cfg.URL, core.ErrInvalid)
	}
	if cfg.Kind == "" {
		cfg.Kind = "conformance"
	}
	if err := core.CheckKind(cfg.Kind); err != nil {
		return nil, fmt.Errorf("contract: kind: %w", err)
	}
	if cfg.UnknownKind == "" {
		cfg.UnknownKind = "offsync_unknown_kind"
	}
	if cfg.TooLarge <= 0 {
		cfg.TooLarge = 5 << 20
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &checker{cfg: cfg, base: strings.TrimRight(cfg.URL, "/"), prefix: "c" + hex.EncodeToString(b[:]) + "-"}
	var out []Result
	for _, ch := range checks {
		r := c.run(ctx, ch)
		out = append(out, r)
		if report != nil {
			report(r)
		}
	}
	return out, nil
}

type check struct {
	name string
	fn   func(c *checker, ctx context.Context) (Status, string)
}

var checks = []check{
	{"health", (*checker).health},
	{"create", (*checker).create},
	{"microsecond-timestamps", (*checker).microseconds},
	{"update-on-returned-version", (*checker).updateOnCurrent},
	{"base-compared-as-instant", (*checker).baseAsInstant},
	{"conflict-on-stale-base", (*checker).staleBase},
	{"conflict-on-create-over-existing", (*checker).createOverExisting},
	{"force", (*checker).force},
	{"idempotent-replay", (*checker).replay},
	{"idempotency-key-reuse", (*checker).keyReuse},
	{"forced-retry-after-409", (*checker).retryAfter409},
	{"keyset-paging-with-writes", (*checker).paging},
	{"tombstones", (*checker).tombstones},
	{"delete-without-base-conflicts", (*checker).deleteNoBase},
	{"delete-missing-404", (*checker).deleteMissing},
	{"scope-invisibility", (*checker).scope},
	{"bad-limit-400", (*checker).badLimit},
	{"bad-page-token-400", (*checker).badToken},
	{"bad-body-400", (*checker).badBody},
	{"bad-base-400", (*checker).badBase},
	{"too-large-413", (*checker).tooLarge},
	{"unknown-kind-404", (*checker).unknownKind},
}

type checker struct {
	cfg    Config
	base   string
	prefix string
	n      int
}

// failure ends a check early with a FAIL.
type failure struct{ detail string }

func (c *checker) run(ctx context.Context, ch check) (r Result) {
	r.Name = ch.name
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(failure)
			if !ok {
				panic(p)
			}
			r.Status, r.Detail = Fail, f.detail
		}
	}()
	r.Status, r.Detail = ch.fn(c, ctx)
	return r
}

func failf(format string, args ...any) { panic(failure{fmt.Sprintf(format, args...)}) }

func (c *checker) id(name string) string {
	c.n++
	return fmt.Sprintf("%s%s-%d", c.prefix, name, c.n)
}

func (c *checker) key() string {
	c.n++
	return fmt.Sprintf("%sop-%d", c.prefix, c.n)
}

// answer is an HTTP answer with its body decoded when it is JSON.
type answer struct {
	status int
	body   map[string]any
	raw    []byte
}

func (a answer) String() string {
	s := string(a.raw)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return fmt.Sprintf("%d %s", a.status, strings.TrimSpace(s))
}

type req struct {
	method, path string
	token        *string // nil: the config's token
	headers      map[string]string
	body         io.Reader
}

func (c *checker) do(ctx context.Context, r req) answer {
	hr, err := http.NewRequestWithContext(ctx, r.method, c.base+r.path, r.body)
	if err != nil {
		failf("request %s %s: %v", r.method, r.path, err)
	}
	tok := c.cfg.Token
	if r.token != nil {
		tok = *r.token
	}
	if tok != "" {
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	if r.body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	resp, err := c.cfg.HTTPClient.Do(hr)
	if err != nil {
		failf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		failf("%s %s: reading the answer: %v", r.method, r.path, err)
	}
	a := answer{status: resp.StatusCode, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (c *checker) path(id string) string {
	return "/" + url.PathEscape(c.cfg.Kind) + "/" + url.PathEscape(id)
}

// record is the part of a record the checks read.
type record struct {
	id      string
	updated string // as the server wrote it
	at      time.Time
	deleted bool
	fields  map[string]any
}

func parseRecord(m map[string]any) (record, error) {
	if m == nil {
		return record{}, fmt.Errorf("no record in the answer")
	}
	r := record{fields: m}
	r.id, _ = m["id"].(string)
	u, ok := m["updated_at"].(string)
	if !ok {
		u, ok = m["updatedAt"].(string)
	}
	if !ok {
		return r, fmt.Errorf("record %q has no updated_at", r.id)
	}
	r.updated = u
	t, err := time.Parse(time.RFC3339Nano, u)
	if err != nil {
		return r, fmt.Errorf("record %q: updated_at %q is not RFC 3339", r.id, u)
	}
	r.at = t
	d := m["deleted_at"]
	if d == nil {
		d = m["deletedAt"]
	}
	r.deleted = d != nil && d != ""
	return r, nil
}

func mustRecord(what string, a answer) record {
	r, err := parseRecord(a.body)
	if err != nil {
		failf("%s: %v (answer %s)", what, err, a)
	}
	return r
}

func jsonBody(m map[string]any) io.Reader {
	b, _ := json.Marshal(m)
	return bytes.NewReader(b)
}

// put sends PUT /{kind}/{id} with fields, an optional base and headers.
func (c *checker) put(ctx context.Context, id string, fields map[string]any, base string, h map[string]string) answer {
	body := map[string]any{}
	for k, v := range fields {
		body[k] = v
	}
	if base != "" {
		body["_baseUpdatedAt"] = base
	}
	if h == nil {
		h = map[string]string{}
	}
	if _, ok := h["X-Idempotency-Key"]; !ok {
		h["X-Idempotency-Key"] = c.key()
	}
	return c.do(ctx, req{method: http.MethodPut, path: c.path(id), headers: h, body: jsonBody(body)})
}

// created creates a record and returns it, or fails the check.
func (c *checker) created(ctx context.Context, name string, fields map[string]any) record {
	id := c.id(name)
	a := c.put(ctx, id, fields, "", nil)
	if a.status != http.StatusOK && a.status != http.StatusCreated {
		failf("create %s: answered %s, want 200 or 201", id, a)
	}
	return mustRecord("create "+id, a)
}

func (c *checker) get(ctx context.Context, id string, token *string) answer {
	return c.do(ctx, req{method: http.MethodGet, path: c.path(id), token: token})
}

var microRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]00:00)$`)
