// Package defects wraps a correct REST handler (rest.NewHandler), or a
// correct client transport, with the defects docs/protocol.md warns against,
// so that conformance checkers can be shown to catch them. It is for tests:
// never serve or sync through these.
package defects

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// OffsetTokens serves pulls with offset page tokens ("off:N:SINCE") over
// an updatedSince query, as naive REST backends do: rows updated
// during a walk shift the offsets and other rows are skipped.
func OffsetTokens(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if r.Method != http.MethodGet || len(parts) != 1 || parts[0] == "health" || parts[0] == "events" {
			h.ServeHTTP(w, r)
			return
		}
		q := r.URL.Query()
		limit, err := strconv.Atoi(q.Get("limit"))
		if err != nil || limit <= 0 {
			h.ServeHTTP(w, r) // let the real handler answer 400
			return
		}
		offset, since := 0, q.Get("updatedSince")
		if tok := q.Get("pageToken"); tok != "" {
			f := strings.SplitN(tok, ":", 3)
			n, err := 0, error(nil)
			if len(f) == 3 && f[0] == "off" {
				n, err = strconv.Atoi(f[1])
			}
			if len(f) != 3 || f[0] != "off" || err != nil {
				h.ServeHTTP(w, r)
				return
			}
			offset, since = n, f[2]
		}
		inner := url.Values{"limit": {strconv.Itoa(min(offset+limit+1, 1000))}, "includeDeleted": {"true"}}
		if since != "" {
			inner.Set("updatedSince", since)
		}
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = inner.Encode()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r2)
		if rec.Code != http.StatusOK {
			copyResponse(w, rec)
			return
		}
		var page struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		items := page.Items[min(offset, len(page.Items)):]
		var next any
		if len(items) > limit {
			items = items[:limit]
			next = fmt.Sprintf("off:%d:%s", offset+limit, since)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"items": items, "nextPageToken": next})
	})
}

// SecondTimestamps truncates every timestamp it answers to whole seconds.
func SecondTimestamps(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/events" {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		var body any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			copyResponse(w, rec)
			return
		}
		b, _ := json.Marshal(truncate(body))
		rec.Body.Reset()
		rec.Body.Write(b)
		copyResponse(w, rec)
	})
}

func truncate(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && (strings.HasSuffix(k, "_at") || strings.HasSuffix(k, "At")) {
				if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
					x[k] = t.UTC().Truncate(time.Second).Format(time.RFC3339)
				}
				continue
			}
			x[k] = truncate(e)
		}
	case []any:
		for i := range x {
			x[i] = truncate(x[i])
		}
	}
	return v
}

// Caching409 keeps every 409 under its X-Idempotency-Key and answers any
// later request with that key with it, so a forced retry fails forever.
func Caching409(h http.Handler) http.Handler {
	var mu sync.Mutex
	cache := map[string]*httptest.ResponseRecorder{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Idempotency-Key")
		if key == "" {
			h.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		cached, ok := cache[key]
		mu.Unlock()
		if ok {
			copyResponse(w, cached)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusConflict {
			mu.Lock()
			cache[key] = rec
			mu.Unlock()
		}
		copyResponse(w, rec)
	})
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		if k == "Content-Length" {
			continue
		}
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
