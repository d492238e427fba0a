// Package ui is the operator's live dashboard of an authority: a page
// (plain HTML, CSS and JavaScript embedded in the binary, no build step, no
// CDN) and the JSON it reads. offsync serve mounts it at /ui unless the
// config says server.ui: false.
//
// Everything it serves is for an administrator only (server.AdminOnly: a
// bearer token whose principal has the attribute role=admin). A browser
// does not send a bearer token by itself, so the page is a sign-in form:
// requested without a token, /ui answers 401 with that form and no data.
// The form keeps the token in the tab's sessionStorage and sends it in the
// Authorization header of its calls: GET api/snapshot (the figures, JSON)
// and GET api/events, a text/event-stream read with fetch(), which carries a
// snapshot on every change (and every Options.Interval, for the rates) and
// each change of the feed. The token is never part of a URL, so it appears
// in no access log or browser history.
//
// The figures are the kinds served with their live rows and tombstones
// (counted in the store, at most once per change), what the authority has
// done since it started (server.Service.Stats: pushed ops by answer, pulled
// rows, requests and subscribers per transport), push and pull rates, and
// the recent changes of the feed, read from the store after each change
// notice (server.Service.Subscribe, the one fan-out of notices).
package ui
