package gateway

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"

	"github.com/chorusml/chorus/protocol"
)

var _ pairServable = (*Cascade)(nil)

// predictPairs answers text pairs stage by stage as predict answers texts,
// when every stage scores pairs. A stage that does not would fail only
// when a pair reaches it, and with on_stage_failure: next its failure
// would silently send the pairs on: so the cascade refuses pairs up front.
func (c *Cascade) predictPairs(ctx context.Context, s *Scorer, _ *Version, pairs [][2]string, useCache bool) (prediction, error) {
	for _, st := range c.stages {
		if !takesPairs(st.s) {
			return prediction{}, fmt.Errorf("%w: cascade %q: stage %q does not score text pairs", protocol.ErrInvalidInput, c.name, st.s.Name())
		}
	}
	return c.run(ctx, s, len(pairs), attribute.Key("chorus.pairs"), func(ctx context.Context, st cascadeStage, v *Version, idx []int) (prediction, error) {
		return st.s.(pairServable).predictPairs(ctx, s, v, pick(pairs, idx), useCache)
	})
}

// takesPairs reports whether m scores text pairs on whichever version a
// request is routed to: every version of a model has a replica that takes
// pairs; every member of an ensemble does.
func takesPairs(m Servable) bool {
	switch m := m.(type) {
	case *Model:
		for _, v := range m.Versions() {
			if !poolTakesPairs(v) {
				return false
			}
		}
		return true
	case *Ensemble:
		for _, mem := range m.members {
			if !takesPairs(mem) {
				return false
			}
		}
		return true
	}
	return false
}

// poolTakesPairs: the pool sends pairs to the replicas that take them.
func poolTakesPairs(v *Version) bool {
	for _, r := range v.Pool.Replicas() {
		if pp, ok := r.Backend().(protocol.PairPredictor); ok && pp.TakesPairs() {
			return true
		}
	}
	return false
}
