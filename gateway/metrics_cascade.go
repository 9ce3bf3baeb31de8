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
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chorus_cascade_answers_total",
		Help: "Texts a cascade answered, by cascade and by the stage that answered."}, []string{"model", "stage"})
	if err := m.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing, nil
			}
		}
		return nil, err
	}
	return c, nil
}
