package tracing

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/offsync/offsync/core"
)

// ScopeName is the instrumentation scope of offsync's spans.
const ScopeName = "github.com/offsync/offsync"

// unsetGlobal is the global provider before the program sets one: otel's
// delegating default, which records nothing.
var unsetGlobal = otel.GetTracerProvider()

// Tracer is a core.Tracer over an OpenTelemetry TracerProvider.
type Tracer struct {
	tp     trace.TracerProvider // nil: the global provider
	cached atomic.Pointer[cachedTracer]
}

type cachedTracer struct {
	tp trace.TracerProvider
	t  trace.Tracer
}

var _ core.Tracer = (*Tracer)(nil)

// New returns a core.Tracer that starts its spans with tp, or with the
// global provider (otel.GetTracerProvider, looked up at each span) when tp
// is nil. With no provider set, or a no-op one, StartSpan costs nothing.
func New(tp trace.TracerProvider) *Tracer { return &Tracer{tp: tp} }

func noEnd(error) {}

// tracer returns the tracer to start a span with, nil when spans would
// record nothing.
func (t *Tracer) tracer() trace.Tracer {
	tp := t.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
		if tp == unsetGlobal {
			return nil
		}
	}
	if _, ok := tp.(noop.TracerProvider); ok {
		return nil
	}
	if c := t.cached.Load(); c != nil && c.tp == tp {
		return c.t
	}
	c := &cachedTracer{tp: tp, t: tp.Tracer(ScopeName)}
	t.cached.Store(c)
	return c.t
}

// Enabled reports whether a span would be recorded: false while the
// provider is the unset global default or a no-op one. core.StartSpan asks
// it first, so that a span nobody records builds nothing.
func (t *Tracer) Enabled() bool { return t.tracer() != nil }

// StartSpan implements core.Tracer. The replica's push and pull spans are
// client spans, the authority's ("offsync.server.*") server spans, the rest
// internal ones. An error ends the span with status Error.
func (t *Tracer) StartSpan(ctx context.Context, name string, attrs ...core.Attr) (context.Context, func(error)) {
	tr := t.tracer()
	if tr == nil {
		return ctx, noEnd
	}
	kind := trace.SpanKindInternal
	switch {
	case name == core.SpanPush || name == core.SpanPull:
		kind = trace.SpanKindClient
	case strings.HasPrefix(name, "offsync.server."):
		kind = trace.SpanKindServer
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(kind)}
	if len(attrs) > 0 {
		kv := make([]attribute.KeyValue, len(attrs))
		for i, a := range attrs {
			if a.IsInt {
				kv[i] = attribute.Int64(a.Key, a.Int)
			} else {
				kv[i] = attribute.String(a.Key, a.Str)
			}
		}
		opts = append(opts, trace.WithAttributes(kv...))
	}
	ctx, span := tr.Start(ctx, name, opts...)
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// propagator is the W3C trace context, whatever the global propagator is:
// the transports carry it on their own.
var propagator = propagation.TraceContext{}

// Field is the name of the trace context's field in the messages of the
// message-based wire forms (WebSocket, GraphQL over WebSocket) and its
// HTTP header and gRPC metadata key: a W3C traceparent value.
const Field = "traceparent"

// InjectHeader sets the traceparent (and tracestate) headers of h from the
// span of ctx; it does nothing when ctx has no span.
func InjectHeader(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// ExtractHeader returns ctx carrying the remote span of the traceparent
// (and tracestate) headers of h; ctx as it is when there is none or it is
// malformed.
func ExtractHeader(ctx context.Context, h http.Header) context.Context {
	if len(h["Traceparent"]) == 0 { // Values would canonicalize the key, allocating
		return ctx
	}
	return propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Traceparent returns the W3C traceparent of the span of ctx, "" when ctx
// has none: the value of a message's "traceparent" field.
func Traceparent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	var b strings.Builder
	b.Grow(55)
	b.WriteString("00-")
	b.WriteString(sc.TraceID().String())
	b.WriteByte('-')
	b.WriteString(sc.SpanID().String())
	if sc.IsSampled() {
		b.WriteString("-01")
	} else {
		b.WriteString("-00")
	}
	return b.String()
}

// Extract returns ctx carrying the remote span of traceparent (a message's
// "traceparent" field); ctx as it is when it is empty or malformed.
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{Field: traceparent})
}
