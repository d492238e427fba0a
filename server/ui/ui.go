package ui

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/server"
)

// Defaults of Options.
const (
	// DefaultInterval is how often a live stream sends a snapshot when
	// nothing changes (the rates are measured over it).
	DefaultInterval = 2 * time.Second
	// DefaultRecent is how many recent changes a stream sends at most
	// after one notice.
	DefaultRecent = 50
)

// maxCountAge is how long the row and tombstone counts shared by the live
// streams are reused while no change notice says they moved: counting reads
// every row of a kind.
const maxCountAge = 30 * time.Second

// writeTimeout bounds each write of a live stream: a browser that stops
// reading is dropped instead of holding the stream open.
const writeTimeout = 30 * time.Second

// Options qualify New. The zero value (or nil) is usable.
type Options struct {
	// Interval between the snapshots of a live stream when nothing
	// changes; DefaultInterval when zero.
	Interval time.Duration
	// Recent is the most changes a stream sends after one notice;
	// DefaultRecent when zero.
	Recent int
	// Logger receives the dashboard's warnings; slog.Default() when nil.
	Logger *slog.Logger
}

// Dashboard serves the page and its API. It is an http.Handler to mount at
// a path of its own (offsync serve uses /ui): it expects the mount path
// stripped, the page at "/".
type Dashboard struct {
	ctx      context.Context
	svc      *server.Service
	store    core.Store
	interval time.Duration
	recent   int
	log      *slog.Logger
	admin    http.Handler // the API behind server.AdminOnly

	countMu   sync.Mutex // one count at a time
	counted   []KindView
	countedAt time.Time
	dirtyMu   sync.Mutex
	dirty     bool // a change was announced since the last count
}

//go:embed assets
var assets embed.FS

// page is the dashboard page with its style and script inlined (one
// response, so that it can be the body of the 401 of a browser without a
// token), and csp the Content-Security-Policy that allows exactly them.
var page, csp = buildPage()

func buildPage() ([]byte, string) {
	read := func(name string) string {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			panic("ui: embedded asset missing: " + err.Error())
		}
		return string(b)
	}
	html, style, script := read("index.html"), read("style.css"), read("app.js")
	if !strings.Contains(html, "<style></style>") || !strings.Contains(html, "<script></script>") {
		panic("ui: index.html needs an empty <style></style> and <script></script>")
	}
	html = strings.Replace(html, "<style></style>", "<style>"+style+"</style>", 1)
	html = strings.Replace(html, "<script></script>", "<script>"+script+"</script>", 1)
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	policy := "default-src 'none'; script-src " + hash(script) + "; style-src " + hash(style) +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return []byte(html), policy
}

// New returns the dashboard of svc, the authority, over store, the store
// it serves (read for the counts and the feed). Its live streams end when
// ctx is done: pass the context whose end shuts the server down, since an
// HTTP server's shutdown waits for the requests in flight.
func New(ctx context.Context, svc *server.Service, store core.Store, o *Options) (*Dashboard, error) {
	if svc == nil || store == nil {
		return nil, fmt.Errorf("ui: %w: nil service or store", core.ErrInvalid)
	}
	var opts Options
	if o != nil {
		opts = *o
	}
	if opts.Interval < 0 || opts.Recent < 0 {
		return nil, fmt.Errorf("ui: %w: negative interval or recent", core.ErrInvalid)
	}
	d := &Dashboard{ctx: ctx, svc: svc, store: store, interval: opts.Interval, recent: opts.Recent, log: opts.Logger}
	if d.interval == 0 {
		d.interval = DefaultInterval
	}
	if d.recent == 0 {
		d.recent = DefaultRecent
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	api := http.NewServeMux()
	api.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { writePage(w, http.StatusOK) })
	api.HandleFunc("GET /api/snapshot", d.serveSnapshot)
	api.HandleFunc("GET /api/events", d.serveEvents)
	d.admin = server.AdminOnly(svc, api)
	return d, nil
}

// ServeHTTP implements http.Handler. Every path needs an administrator's
// bearer token (server.AdminOnly: 401 without one, 403 for a principal
// that is not an administrator). A browser asking for the page without a
// token gets the 401 with the page as its body: a sign-in form that holds
// no data.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		len(r.Header.Values("Authorization")) == 0 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="offsync"`)
		writePage(w, http.StatusUnauthorized)
		return
	}
	d.admin.ServeHTTP(w, r)
}

func writePage(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, _ = w.Write(page)
}

func (d *Dashboard) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	snap, err := d.Snapshot(r.Context())
	if err != nil {
		d.log.Warn("offsync ui: snapshot", "err", err)
		http.Error(w, "the snapshot failed; see the server's log", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_ = json.NewEncoder(w).Encode(snap)
}
