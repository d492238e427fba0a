package contract

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/offsync/offsync/core"
)

func (c *checker) health(ctx context.Context) (Status, string) {
	a := c.do(ctx, req{method: http.MethodGet, path: "/health"})
	if a.status != http.StatusOK || a.body["status"] != "ok" {
		return Fail, fmt.Sprintf("GET /health answered %s, want 200 {\"status\":\"ok\",...}", a)
	}
	return Pass, fmt.Sprintf("protocol %v, capabilities %v", a.body["protocol"], a.body["capabilities"])
}

func (c *checker) create(ctx context.Context) (Status, string) {
	r := c.created(ctx, "create", map[string]any{"title": "created"})
	a := c.get(ctx, r.id, nil)
	if a.status != http.StatusOK {
		return Fail, fmt.Sprintf("GET of the created record answered %s", a)
	}
	if got := mustRecord("get", a); got.fields["title"] != "created" || !got.at.Equal(r.at) {
		return Fail, fmt.Sprintf("GET answered %s, want the stored record @%s", a, r.updated)
	}
	return Pass, "PUT without a base creates; GET returns the stored record"
}

func (c *checker) microseconds(ctx context.Context) (Status, string) {
	var prev record
	anyFraction := false
	for i := range 5 {
		r := c.created(ctx, "micro", map[string]any{"i": i})
		if !microRE.MatchString(r.updated) {
			return Fail, fmt.Sprintf("updated_at %q has no microseconds (want RFC 3339 UTC with 6 fractional digits, e.g. 2026-11-24T19:41:55.123456Z)", r.updated)
		}
		if r.at.Nanosecond() != 0 {
			anyFraction = true
		}
		if i > 0 && !r.at.After(prev.at) {
			return Fail, fmt.Sprintf("two successive writes got updated_at %s then %s: versions must strictly increase (truncated timestamps?)", prev.updated, r.updated)
		}
		prev = r
	}
	if !anyFraction {
		return Fail, "five writes all got whole-second updated_at values: timestamps are truncated"
	}
	return Pass, "updated_at has 6 fractional digits and strictly increases"
}

func (c *checker) updateOnCurrent(ctx context.Context) (Status, string) {
	r := c.created(ctx, "upd", map[string]any{"v": 1})
	a := c.put(ctx, r.id, map[string]any{"v": 2}, r.updated, nil)
	if a.status != http.StatusOK && a.status != http.StatusCreated {
		return Fail, fmt.Sprintf("an update based on the version the server returned (%s) answered %s, want 200: the base check lost precision", r.updated, a)
	}
	if n := mustRecord("update", a); !n.at.After(r.at) {
		return Fail, fmt.Sprintf("the update's updated_at %s is not after %s", n.updated, r.updated)
	}
	return Pass, "an update on the returned version is applied"
}

func (c *checker) baseAsInstant(ctx context.Context) (Status, string) {
	r := c.created(ctx, "instant", map[string]any{"v": 1})
	other := r.at.In(time.FixedZone("", 0)).Format("2006-01-02T15:04:05.000000+00:00")
	if other == r.updated {
		other = r.at.UTC().Format(time.RFC3339Nano)
	}
	a := c.put(ctx, r.id, map[string]any{"v": 2}, other, nil)
	if a.status != http.StatusOK && a.status != http.StatusCreated {
		return Fail, fmt.Sprintf("base %q (the instant of %q written another way) answered %s: bases must be compared as instants", other, r.updated, a)
	}
	return Pass, "a base is compared as an instant, not as a string"
}

func (c *checker) staleBase(ctx context.Context) (Status, string) {
	r := c.created(ctx, "stale", map[string]any{"v": 1})
	u := c.put(ctx, r.id, map[string]any{"v": 2}, r.updated, nil)
	cur := mustRecord("update", u)
	a := c.put(ctx, r.id, map[string]any{"v": 3}, r.updated, nil)
	if a.status != http.StatusConflict {
		return Fail, fmt.Sprintf("an update on a stale base answered %s, want 409", a)
	}
	cm, _ := a.body["current"].(map[string]any)
	got, err := parseRecord(cm)
	if err != nil || !got.at.Equal(cur.at) {
		return Fail, fmt.Sprintf("the 409 does not carry the current record @%s: %s", cur.updated, a)
	}
	if g := mustRecord("get", c.get(ctx, r.id, nil)); fmt.Sprint(g.fields["v"]) != "2" {
		return Fail, fmt.Sprintf("the conflicting write changed the record: v=%v", g.fields["v"])
	}
	return Pass, "409 with the current record; nothing written"
}

func (c *checker) createOverExisting(ctx context.Context) (Status, string) {
	r := c.created(ctx, "dup", map[string]any{"v": 1})
	a := c.put(ctx, r.id, map[string]any{"v": 2}, "", nil)
	if a.status != http.StatusConflict {
		return Fail, fmt.Sprintf("a PUT without a base on an existing record answered %s, want 409 (nothing is overwritten silently)", a)
	}
	return Pass, "a create over an existing record is a 409"
}

func (c *checker) force(ctx context.Context) (Status, string) {
	r := c.created(ctx, "force", map[string]any{"v": 1})
	c.put(ctx, r.id, map[string]any{"v": 2}, r.updated, nil)
	a := c.put(ctx, r.id, map[string]any{"v": 3}, r.updated, map[string]string{"X-Force-Update": "true"})
	if a.status != http.StatusOK && a.status != http.StatusCreated {
		return Fail, fmt.Sprintf("a forced update on a stale base answered %s, want 200", a)
	}
	if g := mustRecord("get", c.get(ctx, r.id, nil)); fmt.Sprint(g.fields["v"]) != "3" {
		return Fail, fmt.Sprintf("after the forced update the record has v=%v, want 3", g.fields["v"])
	}
	return Pass, "X-Force-Update skips the base check"
}

func (c *checker) replay(ctx context.Context) (Status, string) {
	id, key := c.id("replay"), c.key()
	h := func() map[string]string { return map[string]string{"X-Idempotency-Key": key} }
	first := c.put(ctx, id, map[string]any{"v": 1}, "", h())
	if first.status != http.StatusOK && first.status != http.StatusCreated {
		return Fail, fmt.Sprintf("create answered %s", first)
	}
	r1 := mustRecord("create", first)
	second := c.put(ctx, id, map[string]any{"v": 1}, "", h())
	if second.status != first.status {
		return Fail, fmt.Sprintf("the same request under the same idempotency key answered %s, first %s: want the first answer replayed", second, first)
	}
	if r2 := mustRecord("replay", second); !r2.at.Equal(r1.at) {
		return Fail, fmt.Sprintf("the replay has updated_at %s, the first answer %s: the op was applied twice", r2.updated, r1.updated)
	}
	if g := mustRecord("get", c.get(ctx, id, nil)); !g.at.Equal(r1.at) {
		return Fail, fmt.Sprintf("after the replay the record is @%s, want @%s: the op was applied twice", g.updated, r1.updated)
	}
	return Pass, "the same key and request replays the first answer without writing"
}

func (c *checker) keyReuse(ctx context.Context) (Status, string) {
	id, key := c.id("reuse"), c.key()
	first := c.put(ctx, id, map[string]any{"v": 1}, "", map[string]string{"X-Idempotency-Key": key})
	r := mustRecord("create", first)
	a := c.put(ctx, c.id("reuse-other"), map[string]any{"v": 2}, "", map[string]string{"X-Idempotency-Key": key})
	if a.status != http.StatusUnprocessableEntity {
		return Fail, fmt.Sprintf("the same idempotency key with another request answered %s, want 422", a)
	}
	if g := mustRecord("get", c.get(ctx, id, nil)); !g.at.Equal(r.at) {
		return Fail, "the reused key changed the first record"
	}
	return Pass, "the same key with another request is a 422"
}

func (c *checker) retryAfter409(ctx context.Context) (Status, string) {
	r := c.created(ctx, "retry409", map[string]any{"v": 1})
	c.put(ctx, r.id, map[string]any{"v": 2}, r.updated, nil)
	key := c.key()
	a := c.put(ctx, r.id, map[string]any{"v": 3}, r.updated, map[string]string{"X-Idempotency-Key": key})
	if a.status != http.StatusConflict {
		return Fail, fmt.Sprintf("an update on a stale base answered %s, want 409", a)
	}
	b := c.put(ctx, r.id, map[string]any{"v": 3}, r.updated, map[string]string{"X-Idempotency-Key": key, "X-Force-Update": "true"})
	if b.status == http.StatusConflict {
		return Fail, "the forced retry of a conflicted op answered 409 again: the server keeps the 409 under the idempotency key, so the retry fails forever"
	}
	if b.status != http.StatusOK && b.status != http.StatusCreated {
		return Fail, fmt.Sprintf("the forced retry of a conflicted op answered %s, want 200", b)
	}
	return Pass, "a 409 is not kept: the forced retry under the same key is applied"
}

// pull fetches one page.
func (c *checker) pull(ctx context.Context, q url.Values, token *string) answer {
	return c.do(ctx, req{method: http.MethodGet, path: "/" + url.PathEscape(c.cfg.Kind) + "?" + q.Encode(), token: token})
}

func items(a answer) []record {
	list, _ := a.body["items"].([]any)
	var out []record
	for _, it := range list {
		m, _ := it.(map[string]any)
		r, err := parseRecord(m)
		if err != nil {
			failf("pull: %v", err)
		}
		out = append(out, r)
	}
	return out
}

func (c *checker) paging(ctx context.Context) (Status, string) {
	var rows []record
	for i := range 6 {
		rows = append(rows, c.created(ctx, fmt.Sprintf("page%d", i), map[string]any{"i": i}))
	}
	q := url.Values{"limit": {"2"}, "includeDeleted": {"true"}, "updatedSince": {rows[0].updated}}
	seen := map[string]time.Time{}
	var newID string
	var updated record
	for page := 0; ; page++ {
		if page > 40 {
			return Fail, "the walk did not end after 40 pages"
		}
		a := c.pull(ctx, q, nil)
		if a.status != http.StatusOK {
			return Fail, fmt.Sprintf("page %d answered %s", page+1, a)
		}
		for _, r := range items(a) {
			if !strings.HasPrefix(r.id, c.prefix) {
				continue
			}
			if t, ok := seen[r.id]; !ok || r.at.After(t) {
				seen[r.id] = r.at
			}
		}
		if page == 0 {
			// During the walk: an already served row moves to the end, and a
			// new row is added.
			updated = mustRecord("update during the walk", c.put(ctx, rows[0].id, map[string]any{"i": 100}, rows[0].updated, nil))
			newID = c.created(ctx, "page-new", map[string]any{"i": 6}).id
		}
		tok, _ := a.body["nextPageToken"].(string)
		if tok == "" {
			break
		}
		q = url.Values{"limit": {"2"}, "includeDeleted": {"true"}, "pageToken": {tok}}
	}
	var missing []string
	for _, r := range rows[1:] {
		if _, ok := seen[r.id]; !ok {
			missing = append(missing, r.id)
		}
	}
	if len(missing) > 0 {
		return Fail, fmt.Sprintf("rows %v written before the walk were skipped while rows were written during it: page tokens must be keyset positions, not offsets", missing)
	}
	if _, ok := seen[newID]; !ok {
		return Fail, "a row created during the walk never appeared in it"
	}
	if !seen[rows[0].id].Equal(updated.at) {
		return Fail, "a row updated during the walk did not reappear with its new version"
	}
	return Pass, "a walk with limit=2 saw every row, and the rows written during it"
}

func (c *checker) tombstones(ctx context.Context) (Status, string) {
	r := c.created(ctx, "tomb", map[string]any{"v": 1})
	a := c.do(ctx, req{method: http.MethodDelete, path: c.path(r.id) + "?_baseUpdatedAt=" + url.QueryEscape(r.updated),
		headers: map[string]string{"X-Idempotency-Key": c.key()}})
	if a.status != http.StatusOK {
		return Fail, fmt.Sprintf("DELETE with the current base answered %s, want 200", a)
	}
	g := c.get(ctx, r.id, nil)
	if g.status != http.StatusOK {
		return Fail, fmt.Sprintf("GET of a deleted record answered %s, want 200 with the tombstone (hard delete?)", g)
	}
	t := mustRecord("get", g)
	if !t.deleted || !t.at.After(r.at) {
		return Fail, fmt.Sprintf("GET of a deleted record answered %s, want deleted_at set and a newer updated_at", g)
	}
	found := false
	for _, it := range items(c.pull(ctx, url.Values{"limit": {"100"}, "includeDeleted": {"true"}, "updatedSince": {r.updated}}, nil)) {
		if it.id == r.id {
			found = it.deleted
		}
	}
	if !found {
		return Fail, "the tombstone is missing from a pull with includeDeleted=true: other clients never learn of the delete"
	}
	return Pass, "a delete is a tombstone in GET and in pulls"
}

func (c *checker) deleteNoBase(ctx context.Context) (Status, string) {
	r := c.created(ctx, "delnobase", map[string]any{"v": 1})
	a := c.do(ctx, req{method: http.MethodDelete, path: c.path(r.id), headers: map[string]string{"X-Idempotency-Key": c.key()}})
	if a.status != http.StatusConflict {
		return Fail, fmt.Sprintf("DELETE without a base on an existing record answered %s, want 409", a)
	}
	return Pass, "a DELETE without a base is a 409"
}

func (c *checker) deleteMissing(ctx context.Context) (Status, string) {
	a := c.do(ctx, req{method: http.MethodDelete, path: c.path(c.id("never")), headers: map[string]string{"X-Idempotency-Key": c.key()}})
	if a.status != http.StatusNotFound {
		return Fail, fmt.Sprintf("DELETE of a missing record answered %s, want 404", a)
	}
	return Pass, "DELETE of a missing record is a 404"
}

func (c *checker) scope(ctx context.Context) (Status, string) {
	if c.cfg.Token2 == "" {
		return Skip, "no second token (--token2): scope invisibility not checked"
	}
	t2 := &c.cfg.Token2
	r := c.created(ctx, "scoped", map[string]any{"secret": "token-one-only"})
	if g := c.get(ctx, r.id, t2); g.status != http.StatusNotFound {
		return Fail, fmt.Sprintf("the second token's GET of the first token's record answered %s, want 404", g)
	}
	a := c.pull(ctx, url.Values{"limit": {"100"}, "includeDeleted": {"true"}, "updatedSince": {r.updated}}, t2)
	if a.status != http.StatusOK {
		return Fail, fmt.Sprintf("the second token's pull answered %s", a)
	}
	for _, it := range items(a) {
		if it.id == r.id {
			return Fail, "the second token's pull shows the first token's record"
		}
	}
	body := map[string]any{"secret": "stolen", "_baseUpdatedAt": r.updated}
	p := c.do(ctx, req{method: http.MethodPut, path: c.path(r.id), token: t2,
		headers: map[string]string{"X-Idempotency-Key": c.key()}, body: jsonBody(body)})
	if p.status != http.StatusNotFound {
		return Fail, fmt.Sprintf("the second token's PUT on the first token's record answered %s, want 404", p)
	}
	cr := c.do(ctx, req{method: http.MethodPut, path: c.path(r.id), token: t2,
		headers: map[string]string{"X-Idempotency-Key": c.key()}, body: jsonBody(map[string]any{"secret": "stolen"})})
	if bytes.Contains(cr.raw, []byte("token-one-only")) {
		return Fail, fmt.Sprintf("the second token's create over the first token's record shows it: %s", cr)
	}
	if g := mustRecord("get", c.get(ctx, r.id, nil)); g.fields["secret"] != "token-one-only" {
		return Fail, "the second token changed the first token's record"
	}
	return Pass, "out of scope: 404 on GET and PUT, absent from pulls, never in a 409"
}

func (c *checker) badLimit(ctx context.Context) (Status, string) {
	for _, l := range []string{"0", "-1", "abc"} {
		if a := c.pull(ctx, url.Values{"limit": {l}, "includeDeleted": {"true"}}, nil); a.status != http.StatusBadRequest {
			return Fail, fmt.Sprintf("limit=%s answered %s, want 400", l, a)
		}
	}
	return Pass, "limit 0, -1 and abc are 400"
}

func (c *checker) badToken(ctx context.Context) (Status, string) {
	if a := c.pull(ctx, url.Values{"limit": {"2"}, "includeDeleted": {"true"}, "pageToken": {"forged-token"}}, nil); a.status != http.StatusBadRequest {
		return Fail, fmt.Sprintf("a forged pageToken answered %s, want 400", a)
	}
	return Pass, "a forged page token is 400"
}

func (c *checker) badBody(ctx context.Context) (Status, string) {
	for _, b := range []string{"not json", "[1,2]"} {
		a := c.do(ctx, req{method: http.MethodPut, path: c.path(c.id("badbody")),
			headers: map[string]string{"X-Idempotency-Key": c.key()}, body: strings.NewReader(b)})
		if a.status != http.StatusBadRequest {
			return Fail, fmt.Sprintf("PUT with body %q answered %s, want 400", b, a)
		}
	}
	return Pass, "a body that is not a JSON object is 400"
}

func (c *checker) badBase(ctx context.Context) (Status, string) {
	r := c.created(ctx, "badbase", map[string]any{"v": 1})
	a := c.put(ctx, r.id, map[string]any{"v": 2}, "yesterday", nil)
	if a.status != http.StatusBadRequest {
		return Fail, fmt.Sprintf("_baseUpdatedAt \"yesterday\" answered %s, want 400", a)
	}
	return Pass, "a malformed base is 400"
}

func (c *checker) tooLarge(ctx context.Context) (Status, string) {
	big := `{"blob":"` + strings.Repeat("x", c.cfg.TooLarge) + `"}`
	a := c.do(ctx, req{method: http.MethodPut, path: c.path(c.id("big")),
		headers: map[string]string{"X-Idempotency-Key": c.key()}, body: strings.NewReader(big)})
	if a.status != http.StatusRequestEntityTooLarge {
		return Fail, fmt.Sprintf("a %d-byte body answered %s, want 413", len(big), a)
	}
	return Pass, fmt.Sprintf("a %d-byte body is 413", len(big))
}

func (c *checker) unknownKind(ctx context.Context) (Status, string) {
	if err := core.CheckKind(c.cfg.UnknownKind); err != nil {
		return Fail, fmt.Sprintf("bad --unknown-kind: %v", err)
	}
	a := c.do(ctx, req{method: http.MethodGet, path: "/" + url.PathEscape(c.cfg.UnknownKind) + "?limit=1&includeDeleted=true"})
	switch a.status {
	case http.StatusNotFound:
		return Pass, fmt.Sprintf("GET /%s is 404", c.cfg.UnknownKind)
	case http.StatusOK:
		return Skip, fmt.Sprintf("the server serves %q (it serves any kind name?); name a kind it does not serve to check the 404", c.cfg.UnknownKind)
	}
	return Fail, fmt.Sprintf("GET /%s answered %s, want 404", c.cfg.UnknownKind, a)
}
