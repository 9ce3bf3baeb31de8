package gateway

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// CascadeAnswers is chorus_cascade_answers_total{model, stage}: texts each
// stage of each cascade answered. It is registered on first use (a reload
// finds the one already registered), so metrics.go need not know cascades.
func (m *Metrics) CascadeAnswers() (*prometheus.CounterVec, error) {
	if m == nil {
		return nil, nil
	}
	return registerOnce(m.reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chorus_cascade_answers_total",
		Help: "Texts a cascade answered, by cascade and by the stage that answered."}, []string{"model", "stage"}))
}

// registerOnce registers c on reg, or returns the collector of its name
// registered before (by an earlier registry of a reload).
func registerOnce[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		var zero C
		return zero, err
	}
	return c, nil
}
