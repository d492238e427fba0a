package core

import "context"

// Tracer starts the spans of the engine's and the authority's work: a sync,
// a push batch, a pull page, a resolution (Options.Tracer) and the
// authority's handling of each call (server.Options.Tracer). core knows no
// tracing library: package github.com/offsync/offsync/tracing adapts
// OpenTelemetry to it. A nil Tracer costs nothing.
type Tracer interface {
	// StartSpan starts a span named name as a child of the span in ctx (if
	// any) and returns the context carrying it and the function that ends
	// it, recording err (nil: success). The transports carry the span of
	// ctx to the authority.
	StartSpan(ctx context.Context, name string, attrs ...Attr) (context.Context, func(err error))
}

// Attr is an attribute of a span: a string (Str) or, when IsInt is set, an
// integer (Int).
type Attr struct {
	Key   string
	Str   string
	Int   int64
	IsInt bool
}

// StringAttr returns a string attribute.
func StringAttr(key, value string) Attr { return Attr{Key: key, Str: value} }

// IntAttr returns an integer attribute.
func IntAttr(key string, value int) Attr { return Attr{Key: key, Int: int64(value), IsInt: true} }

// The span names and attribute keys of the engine and the authority.
const (
	SpanSync            = "offsync.sync"             // Engine.Sync or Resync
	SpanPush            = "offsync.push"             // one push batch sent to the authority
	SpanPull            = "offsync.pull"             // one pull page asked of the authority
	SpanResolve         = "offsync.resolve"          // the resolution of a push's conflicts
	SpanServerPush      = "offsync.server.push"      // the authority answering a push batch
	SpanServerPull      = "offsync.server.pull"      // the authority answering a pull page
	SpanServerGet       = "offsync.server.get"       // the authority answering a get
	SpanServerSubscribe = "offsync.server.subscribe" // the authority opening a subscription

	AttrKind       = "offsync.kind"       // the kind of a pull or a get
	AttrOps        = "offsync.ops"        // the ops of a push batch
	AttrRecords    = "offsync.records"    // the records of a pull page
	AttrConflicts  = "offsync.conflicts"  // the conflicts of a resolution
	AttrTransport  = "offsync.transport"  // the server half a call came through
	AttrResolution = "offsync.resolution" // a push batch of resolutions
)

var noEnd = func(error) {}

// SpanEnabler is an optional Tracer: Enabled false says a span would record
// nothing, so StartSpan starts none (and builds nothing).
type SpanEnabler interface {
	Enabled() bool
}

// StartSpan starts a span through t with up to two attributes (those with
// an empty Key are left out); with a nil t, or one that is a SpanEnabler
// not Enabled, it returns ctx and a no-op end without allocating. The
// attributes are passed by value so that nothing is built unless a span is
// started.
func StartSpan(ctx context.Context, t Tracer, name string, a, b Attr) (context.Context, func(error)) {
	if t == nil {
		return ctx, noEnd
	}
	if e, ok := t.(SpanEnabler); ok && !e.Enabled() {
		return ctx, noEnd
	}
	attrs := make([]Attr, 0, 2)
	if a.Key != "" {
		attrs = append(attrs, a)
	}
	if b.Key != "" {
		attrs = append(attrs, b)
	}
	return t.StartSpan(ctx, name, attrs...)
}
