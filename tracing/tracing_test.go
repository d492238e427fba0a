package tracing_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	_ "github.com/offsync/offsync/drivers/transport/graphql"
	_ "github.com/offsync/offsync/drivers/transport/grpc"
	_ "github.com/offsync/offsync/drivers/transport/rest"
	_ "github.com/offsync/offsync/drivers/transport/websocket"
	"github.com/offsync/offsync/server"
	"github.com/offsync/offsync/tracing"
)

var notes = core.Documents("note")

func openStore(t *testing.T, name string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), name), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// serve runs the server half name over svc on 127.0.0.1:0 and returns the
// URL a client opens. wrap, when set, wraps an HTTP half's handler.
func serve(t *testing.T, name string, svc core.Transport, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	ctx := t.Context()
	d, err := server.LookupTransport(name)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := server.OpenServer(ctx, name, svc, server.TransportConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	switch h := ts.(type) {
	case server.ListenerTransport:
		done := make(chan struct{})
		go func() { defer close(done); _ = h.Serve(ln) }()
		t.Cleanup(func() { _ = h.Shutdown(context.Background()); <-done })
		return "grpc://" + addr
	case server.HTTPTransport:
		mux, err := server.NewHTTPMux(map[string]http.Handler{d.Path: h})
		if err != nil {
			t.Fatal(err)
		}
		var hh http.Handler = mux
		if wrap != nil {
			hh = wrap(mux)
		}
		hs := &http.Server{Handler: hh}
		done := make(chan struct{})
		go func() { defer close(done); _ = hs.Serve(ln) }()
		t.Cleanup(func() {
			_ = h.Shutdown(context.Background())
			_ = hs.Shutdown(context.Background())
			<-done
		})
		scheme := "http://"
		if name == "websocket" {
			scheme = "ws://"
		}
		return scheme + addr + strings.TrimSuffix(d.Path, "/")
	}
	t.Fatalf("%s: %T is neither an HTTP nor a listener half", name, ts)
	return ""
}

// syncOnce pushes a note from a fresh replica over transport name and
// pulls, with one tracer provider on both sides, and returns the spans.
func syncOnce(t *testing.T, name string, wrap func(http.Handler) http.Handler) tracetest.SpanStubs {
	t.Helper()
	ctx := t.Context()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	svc, err := server.New(ctx, openStore(t, "authority.db"), &server.Options{Tables: []core.Table{notes},
		Tracer: tracing.New(tp)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	url := serve(t, name, svc, wrap)
	tr, err := core.OpenTransport(ctx, name, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := tr.(io.Closer); ok {
		t.Cleanup(func() { _ = c.Close() })
	}
	eng, err := core.NewEngine(ctx, openStore(t, "replica.db"), tr, &core.Options{Tables: []core.Table{notes},
		Tracer: tracing.New(tp)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	if err := core.DocsFor(eng, notes).Put(ctx, "n1", map[string]any{"title": "hello"}); err != nil {
		t.Fatal(err)
	}
	st, err := eng.Sync(ctx)
	if err != nil {
		t.Fatalf("sync over %s: %v", name, err)
	}
	if st.Pushed != 1 {
		t.Fatalf("sync over %s pushed %d, want 1", name, st.Pushed)
	}
	return exp.GetSpans()
}

func find(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func one(t *testing.T, spans tracetest.SpanStubs, name string) tracetest.SpanStub {
	t.Helper()
	got := find(spans, name)
	if len(got) != 1 {
		t.Fatalf("%d spans %q, want 1 (spans: %v)", len(got), name, names(spans))
	}
	return got[0]
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// TestOneTracePerSync checks, over every transport, that a sync is one
// trace: the authority's push and pull spans are children of the replica's
// push batch and pull page spans, themselves children of the sync's span.
func TestOneTracePerSync(t *testing.T) {
	for _, name := range []string{"rest", "websocket", "grpc", "graphql"} {
		t.Run(name, func(t *testing.T) {
			spans := syncOnce(t, name, nil)
			sync := one(t, spans, core.SpanSync)
			traceID := sync.SpanContext.TraceID()
			for _, s := range spans {
				if s.SpanContext.TraceID() != traceID {
					t.Errorf("span %s is in trace %s, the sync in %s", s.Name, s.SpanContext.TraceID(), traceID)
				}
			}
			push := one(t, spans, core.SpanPush)
			pull := one(t, spans, core.SpanPull)
			spush := one(t, spans, core.SpanServerPush)
			spull := one(t, spans, core.SpanServerPull)
			for _, c := range []struct {
				child, parent tracetest.SpanStub
			}{{push, sync}, {pull, sync}, {spush, push}, {spull, pull}} {
				if c.child.Parent.SpanID() != c.parent.SpanContext.SpanID() {
					t.Errorf("%s's parent is %s, want %s (%s)", c.child.Name, c.child.Parent.SpanID(),
						c.parent.SpanContext.SpanID(), c.parent.Name)
				}
			}
			if !spush.Parent.IsRemote() || !spull.Parent.IsRemote() {
				t.Error("the authority's spans do not have a remote parent")
			}
			if spush.SpanKind != trace.SpanKindServer || push.SpanKind != trace.SpanKindClient {
				t.Errorf("span kinds: server push %v, push %v", spush.SpanKind, push.SpanKind)
			}
			if got := attr(spush, core.AttrTransport); got != name {
				t.Errorf("server push span's transport %q, want %q", got, name)
			}
		})
	}
}

func attr(s tracetest.SpanStub, key string) string {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return a.Value.Emit()
		}
	}
	return ""
}

// TestTraceCutWithoutHeaders is the negative control of TestOneTracePerSync:
// a proxy that drops the traceparent header splits the sync into traces.
func TestTraceCutWithoutHeaders(t *testing.T) {
	strip := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("Traceparent")
			r.Header.Del("Tracestate")
			h.ServeHTTP(w, r)
		})
	}
	spans := syncOnce(t, "rest", strip)
	sync := one(t, spans, core.SpanSync)
	spush := one(t, spans, core.SpanServerPush)
	if spush.SpanContext.TraceID() == sync.SpanContext.TraceID() {
		t.Fatal("the authority's push span is in the sync's trace without the header")
	}
}

// TestNoProviderNoCost checks that, with no tracer provider set (otel's
// global default) or a no-op one, a span and the trace context's carriers
// allocate nothing and leave ctx as it is.
func TestNoProviderNoCost(t *testing.T) {
	ctx := context.Background()
	h := http.Header{}
	for _, tr := range []*tracing.Tracer{tracing.New(nil), tracing.New(noop.NewTracerProvider())} {
		n := testing.AllocsPerRun(200, func() {
			c, end := core.StartSpan(ctx, tr, core.SpanServerPush, core.IntAttr(core.AttrOps, 3),
				core.StringAttr(core.AttrTransport, "rest"))
			end(nil)
			if c != ctx {
				panic("ctx changed")
			}
			tracing.InjectHeader(c, h)
			if tracing.ExtractHeader(c, h) != c || tracing.Extract(c, tracing.Traceparent(c)) != c {
				panic("ctx changed")
			}
		})
		if n != 0 {
			t.Fatalf("%v allocations per span and carriers with no provider", n)
		}
	}
	if len(h) != 0 {
		t.Fatalf("headers set without a span: %v", h)
	}
}

// TestPushNoExtraAllocs checks that the authority's push path allocates no
// more with the no-op provider (or the unset global one) than with no tracer
// at all. AllocsPerRun counts every goroutine's allocations (the store's
// included), so each figure is the least of several rounds.
func TestPushNoExtraAllocs(t *testing.T) {
	ctx := server.WithTransport(t.Context(), "rest")
	push := func(tr core.Tracer) func() {
		svc, err := server.New(ctx, openStore(t, "a.db"), &server.Options{Tables: []core.Table{notes}, Tracer: tr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = svc.Close() })
		ops := []core.Op{{Kind: "note", ID: "x", Type: core.OpDelete}}
		return func() {
			// Deleting a missing record: the same answer every time.
			if _, err := svc.Push(ctx, ops); err != nil {
				panic(err)
			}
		}
	}
	// A recording provider is the negative control: its spans allocate.
	rec := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = rec.Shutdown(context.Background()) })
	fns := []func(){push(nil), push(tracing.New(noop.NewTracerProvider())), push(tracing.New(nil)), push(tracing.New(rec))}
	least := []float64{math.Inf(1), math.Inf(1), math.Inf(1), math.Inf(1)}
	for range 5 {
		for i, fn := range fns {
			least[i] = min(least[i], testing.AllocsPerRun(50, fn))
		}
	}
	base, noopTr, global, recording := least[0], least[1], least[2], least[3]
	t.Logf("allocations per push: no tracer %v, no-op provider %v, global default %v, recording %v", base, noopTr, global, recording)
	if recording <= base {
		t.Fatalf("the negative control allocates no more with a recording provider (%v <= %v): the count sees nothing", recording, base)
	}
	if noopTr > base || global > base {
		t.Fatalf("the push path allocates more with the no-op provider: %v, %v > %v", noopTr, global, base)
	}
}

// TestSpanError checks that an error ends the span with status Error.
func TestSpanError(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	_, end := tracing.New(tp).StartSpan(context.Background(), core.SpanSync)
	end(errors.New("boom"))
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Status.Description != "boom" || len(spans[0].Events) != 1 {
		t.Fatalf("spans %+v", spans)
	}
}

// TestSubscribeJoinsTheCallersTrace checks the trace context of the
// streams: the authority's span of a subscription is a child of the
// caller's span over every transport (REST's event stream, the WebSocket
// sub frame, gRPC metadata, graphql-ws connection_init).
func TestSubscribeJoinsTheCallersTrace(t *testing.T) {
	for _, name := range []string{"rest", "websocket", "grpc", "graphql"} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			svc, err := server.New(ctx, openStore(t, "authority.db"), &server.Options{Tables: []core.Table{notes},
				Tracer: tracing.New(tp)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = svc.Close() })
			tr, err := core.OpenTransport(ctx, name, serve(t, name, svc, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := tr.(io.Closer); ok {
				t.Cleanup(func() { _ = c.Close() })
			}
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			sctx, caller := tp.Tracer("test").Start(sctx, "caller")
			if _, err := tr.(core.Subscriber).Subscribe(sctx, []string{"note"}); err != nil {
				t.Fatal(err)
			}
			caller.End()
			var sub []tracetest.SpanStub
			for range 1000 { // the authority may end its span after the client returned
				if sub = find(exp.GetSpans(), core.SpanServerSubscribe); len(sub) > 0 {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if len(sub) != 1 {
				t.Fatalf("%d subscribe spans, want 1 (spans %v)", len(sub), names(exp.GetSpans()))
			}
			if got, want := sub[0].Parent.SpanID(), caller.SpanContext().SpanID(); got != want || !sub[0].Parent.IsRemote() {
				t.Fatalf("the subscribe span's parent is %s (remote %v), want the caller's %s", got, sub[0].Parent.IsRemote(), want)
			}
		})
	}
}
