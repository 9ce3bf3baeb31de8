package gateway

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

const tracerName = "github.com/chorusml/chorus/gateway"

// tracerOf is the gateway's tracer from tp; nil or a provider that records
// nothing (tracing off) gives one that starts no span at all.
func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return quietTracer{}
	}
	if _, off := tp.(noop.TracerProvider); off {
		return quietTracer{}
	}
	return tp.Tracer(tracerName)
}

// quietTracer leaves the context as it is. A noop tracer's spans record
// nothing either, but each costs a context allocation, a few per request
// on the cache-hit path.
type quietTracer struct{ embedded.Tracer }

// Start returns ctx and the span already in it, which, with tracing off,
// records nothing: ending it or adding to it has no effect.
func (quietTracer) Start(ctx context.Context, _ string, _ ...trace.SpanStartOption) (context.Context, trace.Span) {
	return ctx, trace.SpanFromContext(ctx)
}
