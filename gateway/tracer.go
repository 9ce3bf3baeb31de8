package gateway

import (
	"context"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

const tracerName = "github.com/chorusml/chorus/gateway"

// tracingOff says whether tp records nothing: nil or a noop provider.
func tracingOff(tp trace.TracerProvider) bool {
	_, noopProvider := tp.(noop.TracerProvider)
	return tp == nil || noopProvider
}

// tracerOf is the gateway's tracer from tp; with tracing off, one that
// starts no span at all.
func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tracingOff(tp) {
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
