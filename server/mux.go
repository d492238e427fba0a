package server

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// HTTPMux routes requests on the shared HTTP listener to the server halves
// mounted on it: a request whose escaped path is a mount path, or starts
// with it followed by "/", goes to that half with the mount path stripped
// (the mount point itself becomes "/"); the longest mount path wins, and
// "/" catches the rest. Unlike http.ServeMux it never cleans or redirects a
// path, so ids escaped into the path (%2F) reach the half as sent.
type HTTPMux struct {
	mounts []mount // longest path first
}

type mount struct {
	path string
	h    http.Handler
}

// NewHTTPMux returns a router over mounts (path → handler). A path must
// start with "/" and not end with one (except "/" itself).
func NewHTTPMux(mounts map[string]http.Handler) (*HTTPMux, error) {
	m := &HTTPMux{}
	for p, h := range mounts {
		if !strings.HasPrefix(p, "/") || (p != "/" && strings.HasSuffix(p, "/")) || h == nil {
			return nil, fmt.Errorf("server: bad mount path %q: want /name (and a handler)", p)
		}
		m.mounts = append(m.mounts, mount{p, h})
	}
	sort.Slice(m.mounts, func(i, j int) bool { return len(m.mounts[i].path) > len(m.mounts[j].path) })
	return m, nil
}

// ServeHTTP implements http.Handler.
func (m *HTTPMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	for _, mt := range m.mounts {
		if mt.path == "/" {
			mt.h.ServeHTTP(w, r)
			return
		}
		rest, ok := strings.CutPrefix(path, mt.path)
		if !ok || (rest != "" && rest[0] != '/') {
			continue
		}
		if rest == "" {
			rest = "/"
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path, u.RawPath = rest, rest
		if p, err := url.PathUnescape(rest); err == nil {
			u.Path = p
		}
		r2.URL = &u
		mt.h.ServeHTTP(w, r2)
		return
	}
	http.NotFound(w, r)
}
