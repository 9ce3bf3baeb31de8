package gateway

import (
	"cmp"
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/singleflight"

	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/protocol"
)

// Scorer answers "score these texts with model X" through the logits
// cache, with no HTTP in sight: the HTTP handlers use it, and so does
// `chorus calibrate` in-process.
type Scorer struct {
	cacheOpts CacheOptions
	tracer    trace.Tracer
	// cacheStats count hits, misses and store errors.
	cacheStats cacheCounters
	// flights collapses concurrent identical backend calls.
	flights singleflight.Group
}

// NewScorer builds a scorer; a zero CacheOptions scores without a cache,
// a nil tracer provider without spans.
func NewScorer(o CacheOptions, tp trace.TracerProvider) *Scorer {
	o.Namespace = cmp.Or(o.Namespace, cache.DefaultNamespace)
	o.TTL = cmp.Or(o.TTL, cache.DefaultTTL)
	return &Scorer{cacheOpts: o, tracer: tracerOf(tp)}
}

// prediction is a servable's answer before rendering.
type prediction struct {
	logits protocol.Logits
	cache  cacheResult
	// ensemble answers also say which members answered, and which did not.
	ensemble bool
	members  []memberResult
	failed   []string
	// cascade answers also say which stage answered each text.
	cascade *cascadeResult
	// windows per text, for a model that classifies long texts in windows.
	windows []int
}

// Predict scores texts with m on version v (see Servable.Route).
func (s *Scorer) Predict(ctx context.Context, m Servable, v *Version, texts []string, useCache bool) (p prediction, err error) {
	ctx, end := s.predictSpan(ctx, m, v, attribute.Int("chorus.texts", len(texts)))
	defer func() { end(p, err) }()
	return m.predict(ctx, s, v, texts, useCache)
}

// predictSpan starts the chorus.predict span of one request (inputs says
// how many texts or pairs); end records how the cache served it and err.
func (s *Scorer) predictSpan(ctx context.Context, m Servable, v *Version, inputs attribute.KeyValue) (context.Context, func(prediction, error)) {
	ctx, span := s.tracer.Start(ctx, "chorus.predict")
	if span.IsRecording() { // attributes cost allocations per request; build them only for a span that keeps them
		span.SetAttributes(attribute.String("chorus.model", m.Name()), attribute.String("chorus.version", v.Name), inputs)
	}
	return ctx, func(p prediction, err error) {
		if p.cache.used && span.IsRecording() {
			span.SetAttributes(attribute.String("chorus.cache", p.cache.header()), attribute.Int("chorus.cache_hits", p.cache.hits))
		}
		endSpan(span, err)
	}
}

// Logits returns the raw logits of a registry model for texts (an
// ensemble's combined logits), bypassing the cache, with its metadata:
// what `chorus calibrate` scores in-process.
func (s *Scorer) Logits(ctx context.Context, r *Registry, model string, texts []string) (protocol.Logits, protocol.ModelMetadata, error) {
	m, v, err := resolve(r, model, "")
	if err != nil {
		return nil, protocol.ModelMetadata{}, err
	}
	p, err := s.Predict(ctx, m, v, texts, false)
	return p.logits, m.Metadata(), err
}
