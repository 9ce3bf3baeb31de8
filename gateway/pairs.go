package gateway

import (
	"context"
	"fmt"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"

	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/protocol"
)

// pairServable is a servable that scores text pairs. Models and ensembles
// are; a servable that is not answers a pair request with a 400.
type pairServable interface {
	predictPairs(ctx context.Context, s *Scorer, v *Version, pairs [][2]string, useCache bool) (prediction, error)
}

// PredictPairs scores text pairs with m on version v, through the cache
// (one entry per pair).
func (s *Scorer) PredictPairs(ctx context.Context, m Servable, v *Version, pairs [][2]string, useCache bool) (p prediction, err error) {
	ps, ok := m.(pairServable)
	if !ok {
		return prediction{}, fmt.Errorf("%w: %q does not score text pairs", protocol.ErrInvalidInput, m.Name())
	}
	ctx, end := s.predictSpan(ctx, m, v, attribute.Int("chorus.pairs", len(pairs)))
	defer func() { end(p, err) }()
	return ps.predictPairs(ctx, s, v, pairs, useCache)
}

// PredictPairs scores pairs on version v, bypassing any cache, on the
// replicas that take pairs, and checks the contract's shape.
func (m *Model) PredictPairs(ctx context.Context, v *Version, pairs [][2]string) (protocol.Logits, error) {
	logits, err := v.Pool.PredictPairs(ctx, pairs)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.name, err)
	}
	if err := protocol.CheckShape(logits, len(pairs), len(m.meta.Labels)); err != nil {
		return nil, fmt.Errorf("model %s: %w: backend broke the contract: %w", m.name, protocol.ErrBadGateway, err)
	}
	return logits, nil
}

func (m *Model) predictPairs(ctx context.Context, s *Scorer, v *Version, pairs [][2]string, useCache bool) (prediction, error) {
	l, cr, err := s.cachedPairs(ctx, m, v, pairs, useCache)
	return prediction{logits: l, cache: cr}, err
}

// cachedPairs is cached for text pairs: keys are cache.PairKey's, which no
// single text's key can equal.
func (s *Scorer) cachedPairs(ctx context.Context, m *Model, v *Version, pairs [][2]string, useCache bool) (protocol.Logits, cacheResult, error) {
	return cachedRows(ctx, s, m, v, pairs, useCache,
		func(fp string, p [2]string) string {
			return cache.PairKey(s.cacheOpts.Namespace, m.name, fp, p[0], p[1])
		},
		func(ctx context.Context, v *Version, pairs [][2]string) (protocol.Logits, []int, error) {
			return withTruncation(ctx, func(ctx context.Context) (protocol.Logits, error) { return m.PredictPairs(ctx, v, pairs) })
		})
}

// predictPairs sends the pairs to every member, each through its own pool
// and cache, and combines what answered.
func (e *Ensemble) predictPairs(ctx context.Context, s *Scorer, _ *Version, pairs [][2]string, useCache bool) (prediction, error) {
	return e.fanOut(ctx, s, len(pairs), func(ctx context.Context, mem *Model, mv *Version) (protocol.Logits, cacheResult, error) {
		return s.cachedPairs(ctx, mem, mv, pairs, useCache)
	})
}

// checkPairs applies the request limits to pairs: at most MaxInstances
// pairs, each text of a pair at most MaxTextChars.
func (s *Server) checkPairs(pairs [][2]string) error {
	if len(pairs) > s.limits.MaxInstances {
		return fmt.Errorf("%w: %d text pairs in one request, the limit is %d", protocol.ErrTooLarge, len(pairs), s.limits.MaxInstances)
	}
	for i, p := range pairs {
		for j, t := range p {
			if n := utf8.RuneCountInString(t); n > s.limits.MaxTextChars {
				return fmt.Errorf("%w: pair %d %s has %d characters, the limit is %d", protocol.ErrTooLarge, i, []string{"text", "text_pair"}[j], n, s.limits.MaxTextChars)
			}
		}
	}
	return nil
}

// checkInputs applies the request limits to a request's texts or pairs.
func (s *Server) checkInputs(texts []string, pairs [][2]string) error {
	if pairs != nil {
		return s.checkPairs(pairs)
	}
	return s.checkTexts(texts)
}

// predictInputs scores a request's texts, or its pairs when it sent pairs.
func (s *Server) predictInputs(ctx context.Context, m Servable, v *Version, texts []string, pairs [][2]string, useCache bool) (prediction, error) {
	if pairs != nil {
		return s.scorer.PredictPairs(ctx, m, v, pairs, useCache)
	}
	return s.scorer.Predict(ctx, m, v, texts, useCache)
}
