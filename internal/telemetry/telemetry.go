// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_*
// environment variables: an OTLP exporter when an endpoint or exporter is
// configured, nothing (a no-op provider) otherwise. Only main calls it; the
// provider is passed to whatever traces, never installed globally.
package telemetry

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Propagator carries trace context between processes (W3C traceparent).
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Tracing is a tracer provider and how to flush it.
type Tracing struct {
	Provider trace.TracerProvider
	shutdown func(context.Context) error
}

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t.shutdown != nil }

// Shutdown flushes buffered spans, waiting at most timeout.
func (t *Tracing) Shutdown(timeout time.Duration) error {
	if t.shutdown == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.shutdown(ctx)
}

// FromEnv exports over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER=otlp is set
// (the exporter then reads the rest of the OTEL_* variables itself), and
// exports nothing otherwise. service names the process unless
// OTEL_SERVICE_NAME does.
func FromEnv(ctx context.Context, getenv func(string) string, service, version string) (*Tracing, error) {
	exp := getenv("OTEL_TRACES_EXPORTER")
	on := getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || exp == "otlp"
	if !on || exp == "none" {
		return &Tracing{Provider: noop.NewTracerProvider()}, nil
	}
	exporter, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	if s := getenv("OTEL_SERVICE_NAME"); s != "" {
		service = s
	}
	// Schemaless: it merges with the SDK's default resource whatever
	// semantic-conventions version that one uses.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", service), attribute.String("service.version", version)))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	return &Tracing{Provider: tp, shutdown: tp.Shutdown}, nil
}
