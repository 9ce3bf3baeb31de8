package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusml/chorus/protocol"
)

// WindowsReport makes a model whose replicas classify long texts in
// windows say how many windows each text used.
type WindowsReport struct {
	// Histogram receives windows per text, labelled by model (nil: none);
	// see Metrics.LongTextWindows.
	Histogram prometheus.ObserverVec
}

// windowCounter is what the gateway needs from a replica that windows long
// texts (the in-process ONNX backend): how many windows each text takes.
type windowCounter interface {
	Windows(texts []string) ([]int, error)
}

// checkWindows makes sure every replica can count windows: a chunking
// model must be served in-process.
func (m *Model) checkWindows() error {
	for _, v := range m.versions {
		for _, r := range v.Pool.Replicas() {
			if _, ok := r.Backend().(windowCounter); !ok {
				return fmt.Errorf("model %s: replica %s cannot window long texts (long_text chunk needs in-process replicas)", m.name, r.Name)
			}
		}
	}
	return nil
}

// windowsOf counts each text's windows: those the backend reported while
// scoring them (counted), the rest (the logits came from the cache) with
// version v's first replica (every replica of a version serves the same
// model, windowed alike), a tokenization each; nil when the model does
// not window.
func (m *Model) windowsOf(v *Version, texts []string, counted *protocol.WindowCounts) ([]int, error) {
	if m.windows == nil {
		return nil, nil
	}
	n := make([]int, len(texts))
	var rest []string
	var at []int
	for i, t := range texts {
		var ok bool
		if n[i], ok = counted.Count(t); !ok {
			rest, at = append(rest, t), append(at, i)
		}
	}
	if len(rest) > 0 {
		wc, ok := v.Pool.Replicas()[0].Backend().(windowCounter)
		if !ok {
			return nil, errors.New("no replica counts windows")
		}
		c, err := wc.Windows(rest)
		if err != nil {
			return nil, fmt.Errorf("model %s: count windows: %w", m.name, err)
		}
		for j, i := range at {
			n[i] = c[j]
		}
	}
	if h := m.windows.Histogram; h != nil {
		o := h.WithLabelValues(m.name)
		for _, w := range n {
			o.Observe(float64(w))
		}
	}
	return n, nil
}

// windowsV2Parameters say how many windows each text used, as OIP scalars:
// "1,3,1" and the total.
func windowsV2Parameters(out map[string]any, windows []int) {
	s := make([]string, len(windows))
	total := 0
	for i, w := range windows {
		s[i] = strconv.Itoa(w)
		total += w
	}
	out["windows"] = strings.Join(s, ",")
	out["windows_total"] = total
}

// LongTextWindows is chorus_long_text_windows{model}: windows per text of
// the models that classify long texts whole. Registered on first use (a
// reload finds the one already registered).
func (m *Metrics) LongTextWindows() (*prometheus.HistogramVec, error) {
	if m == nil {
		return nil, nil
	}
	return registerOnce(m.reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chorus_long_text_windows",
		Help:    "Token windows per text of models with long_text mode chunk (1: the text fit one window).",
		Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64}}, []string{"model"}))
}
