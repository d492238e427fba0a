package tracing_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/offsync/offsync/core"
	"github.com/offsync/offsync/drivers/store/sqlite"
	"github.com/offsync/offsync/server"
	"github.com/offsync/offsync/tracing"
)

// A replica and an authority share one tracer provider (here, in process;
// over a wire the transports carry the trace context): a sync is one trace.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "offsync-example-")
	defer os.RemoveAll(dir)
	authStore, _ := sqlite.Open(ctx, filepath.Join(dir, "authority.db"), nil)
	defer authStore.Close()
	replicaStore, _ := sqlite.Open(ctx, filepath.Join(dir, "replica.db"), nil)
	defer replicaStore.Close()

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(ctx)

	authority, _ := server.New(ctx, authStore, &server.Options{
		Tables: []core.Table{core.Documents("note")},
		Tracer: tracing.New(tp),
	})
	defer authority.Close()
	eng, _ := core.NewEngine(ctx, replicaStore, authority, &core.Options{
		Tables: []core.Table{core.Documents("note")},
		Tracer: tracing.New(tp),
	})
	defer eng.Close()
	tbl, _ := eng.Table("note")
	_ = core.DocsFor(eng, tbl.(*core.DocumentTable)).Put(ctx, "n1", map[string]any{"title": "hello"})
	if _, err := eng.Sync(ctx); err != nil {
		fmt.Println(err)
	}
	traces := map[string]bool{}
	for _, s := range exp.GetSpans() {
		traces[s.SpanContext.TraceID().String()] = true
		fmt.Println(s.Name)
	}
	fmt.Println("traces:", len(traces))
	// Output:
	// offsync.server.push
	// offsync.push
	// offsync.server.pull
	// offsync.pull
	// offsync.sync
	// traces: 1
}
