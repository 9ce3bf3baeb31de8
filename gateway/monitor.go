package gateway

import (
	"math"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusml/chorus/calibration"
)

// MonitorOptions bound what the gateway keeps to watch its models'
// calibration in production. The registry fills them (server.monitoring);
// zero keeps nothing.
type MonitorOptions struct {
	// Window is how many of a model's most recent labelled answers the
	// rolling accuracy, NLL and ECE cover. 0: none are kept, and the rolling
	// gauges are never exported.
	Window int
	// Remember is how many answered texts, over all models, are kept by
	// request id so that feedback can name them later; past it the oldest
	// requests are forgotten first (feedback naming them gets a 404). Each
	// text costs its calibrated logits (4 bytes a label) plus about 100
	// bytes, and up to twice Remember texts are held in memory. A request
	// with more texts than Remember is not kept. 0: none are kept, and
	// feedback must carry the text.
	Remember int
}

// maxAnswerIDLen bounds the ids an answer is kept under, as X-Request-Id
// is bounded: a V2 body's id may be as long as the body.
const maxAnswerIDLen = 128

// monitorBins are the equal-width bins of the rolling ECE: chorus
// calibrate's default, so that the gauge and its report agree.
const monitorBins = 15

// confidenceBuckets are fine where a classifier's top-label confidence
// lives (0.5 to 1 for two classes) and coarse below, down to 1/k for k
// labels; values are at most 1.
var confidenceBuckets = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85,
	0.9, 0.925, 0.95, 0.975, 0.99, 0.995, 0.999, 1}

// monitor records the confidence of every answer, keeps recent answers by
// request id, and keeps each model's most recent labelled answers, from
// which it exports rolling accuracy, NLL and ECE at scrape time.
type monitor struct {
	opts       MonitorOptions
	confidence *prometheus.HistogramVec
	feedback   *prometheus.CounterVec
	accuracy   *prometheus.Desc
	nll        *prometheus.Desc
	ece        *prometheus.Desc
	size       *prometheus.Desc

	mu      sync.Mutex
	answers answerStore
	windows map[string]*window
}

func newMonitor(o MonitorOptions) *monitor {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"model"}, nil)
	}
	return &monitor{opts: o,
		confidence: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chorus_confidence",
			Help:    "Top-label (calibrated) probability of every text answered, cache hits included, by model.",
			Buckets: confidenceBuckets}, []string{"model"}),
		feedback: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chorus_feedback_total",
			Help: "True labels received for answered texts (POST /v2/models/{name}/feedback), by model."}, []string{"model"}),
		accuracy: d("chorus_rolling_accuracy", "Accuracy of the model's most recent labelled answers (server.monitoring.window)."),
		nll:      d("chorus_rolling_nll", "Mean negative log-likelihood of the true label over the most recent labelled answers."),
		ece:      d("chorus_rolling_ece", "Expected calibration error (15 equal-width bins) of the most recent labelled answers."),
		size:     d("chorus_rolling_window_answers", "Labelled answers the rolling metrics cover now (at most server.monitoring.window)."),
		answers:  answerStore{remember: o.Remember},
		windows:  map[string]*window{},
	}
}

// register adds the monitor's metrics to reg.
func (m *monitor) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.confidence, m.feedback, m} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// answered records what was served for model: the top-label confidence of
// every text, and the answer under the request's id and the V2 body's id
// (empty ones skipped) for feedback to name. It runs on every answer, cache
// hits included, so it allocates little: the answer, its rows and one
// array for their logits.
func (m *monitor) answered(model string, r render, rows [][]float32, requestID, bodyID string) {
	obs := m.confidence.WithLabelValues(model)
	for _, row := range rows {
		if p := r.probs(row); len(p) > 0 {
			obs.Observe(float64(slices.Max(p)))
		}
	}
	if len(rows) == 0 || len(rows) > m.opts.Remember {
		return
	}
	a := &answer{model: model, rows: r.calibratedRows(rows)}
	for _, id := range [...]string{requestID, bodyID} {
		if id != "" && len(id) <= maxAnswerIDLen && !slices.Contains(a.ids[:a.n], id) {
			a.ids[a.n] = id
			a.n++
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.answers.add(a)
}

// labelled is one text's true label, with the calibrated logits it was
// answered (or scored) with.
type labelled struct {
	row   []float32
	label int
}

// learn adds labelled answers to model's window and counts them.
func (m *monitor) learn(model string, ls []labelled) {
	m.feedback.WithLabelValues(model).Add(float64(len(ls)))
	if m.opts.Window <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	w := m.windows[model]
	for _, l := range ls {
		if w == nil || w.k != len(l.row) {
			// A new model, or one reloaded with other labels: the old
			// answers say nothing about it.
			w = &window{k: len(l.row), size: m.opts.Window}
			m.windows[model] = w
		}
		w.add(l.row, l.label)
	}
}

// window is a ring of a model's most recent labelled answers.
type window struct {
	k, size int
	logits  [][]float64
	labels  []int
	next    int // where the next answer goes once the ring is full
}

func (w *window) add(row []float32, y int) {
	z := make([]float64, len(row))
	for j, v := range row {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return // a broken backend's answer would poison every metric
		}
		z[j] = float64(v)
	}
	if len(w.labels) < w.size {
		w.logits, w.labels = append(w.logits, z), append(w.labels, y)
		return
	}
	w.logits[w.next], w.labels[w.next] = z, y
	w.next = (w.next + 1) % w.size
}

// rolling are a window's metrics, from calibration's own functions.
type rolling struct {
	Answers  int     `json:"answers"`
	Accuracy float64 `json:"accuracy"`
	NLL      float64 `json:"nll"`
	ECE      float64 `json:"ece"`
}

// rolling computes model's window metrics; false when it has none.
func (m *monitor) rolling(model string) (rolling, bool) {
	m.mu.Lock()
	w := m.windows[model]
	var logits [][]float64
	var labels []int
	if w != nil {
		// Rows are never changed once added, only replaced: a shallow copy
		// lets the metrics be computed outside the lock.
		logits, labels = slices.Clone(w.logits), slices.Clone(w.labels)
	}
	m.mu.Unlock()
	if len(labels) == 0 {
		return rolling{}, false
	}
	// The rows are calibrated logits: softmax at temperature 1 gives back
	// the probabilities served.
	met, err := calibration.Evaluate(logits, labels, 1, monitorBins)
	if err != nil {
		return rolling{}, false
	}
	return rolling{Answers: met.N, Accuracy: met.Accuracy, NLL: met.NLL, ECE: met.ECE}, true
}

func (m *monitor) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.accuracy, m.nll, m.ece, m.size} {
		ch <- d
	}
}

// Collect computes the rolling metrics at scrape time, so that feedback
// costs only an append.
func (m *monitor) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	models := make([]string, 0, len(m.windows))
	for name := range m.windows {
		models = append(models, name)
	}
	m.mu.Unlock()
	slices.Sort(models)
	for _, name := range models {
		r, ok := m.rolling(name)
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(m.accuracy, prometheus.GaugeValue, r.Accuracy, name)
		ch <- prometheus.MustNewConstMetric(m.nll, prometheus.GaugeValue, r.NLL, name)
		ch <- prometheus.MustNewConstMetric(m.ece, prometheus.GaugeValue, r.ECE, name)
		ch <- prometheus.MustNewConstMetric(m.size, prometheus.GaugeValue, float64(r.Answers), name)
	}
}
