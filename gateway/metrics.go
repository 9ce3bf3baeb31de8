package gateway

import (
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are Chorus's Prometheus metrics. They are registered on the
// registerer given to NewMetrics, never on the global default registry.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	inflight  prometheus.Gauge
	batchSize *prometheus.HistogramVec
	queueWait *prometheus.HistogramVec
	queue     *prometheus.GaugeVec
	runTime   *prometheus.HistogramVec
	truncated *prometheus.CounterVec
	overlaps  *prometheus.CounterVec
	reg       prometheus.Registerer
}

// NewMetrics registers the request, batch and build metrics on reg.
func NewMetrics(reg prometheus.Registerer, version string) (*Metrics, error) {
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chorus_requests_total",
			Help: "Inference and metadata requests, by model, protocol, route and HTTP status code."},
			[]string{"model", "protocol", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chorus_request_duration_seconds",
			Help: "Time from request to response, by model, protocol and route.", Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16)},
			[]string{"model", "protocol", "route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "chorus_requests_in_flight",
			Help: "Requests being served now."}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chorus_batch_size",
			Help: "Texts per ONNX Runtime run.", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}, []string{"model"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chorus_batch_queue_wait_seconds",
			Help: "How long the oldest text of a run waited in the batch queue.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14)}, []string{"model"}),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "chorus_batch_queue_depth",
			Help: "Requests waiting in a model's batch queue."}, []string{"model"}),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "chorus_onnx_run_seconds",
			Help: "ONNX Runtime time per run.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"model"}),
		truncated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chorus_truncated_texts_total",
			Help: "Texts (or text pairs) answered after being cut to the model's max length, cache hits included, by model."}, []string{"model"}),
		overlaps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "chorus_onnx_overlapping_runs_total",
			Help: "ONNX Runtime runs that started while another run of the model was in progress (batching.concurrent_runs), by model."}, []string{"model"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "chorus_build_info", Help: "Always 1; the labels say what is running.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	build.Set(1)
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inflight, m.batchSize, m.queueWait, m.queue, m.runTime, m.truncated, m.overlaps, build} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// RequestsCounter is one series of chorus_requests_total (for tests).
func (m *Metrics) RequestsCounter(model, protocol, route, code string) prometheus.Counter {
	return m.requests.WithLabelValues(model, protocol, route, code)
}

// ModelObserver reports an in-process model's runs into the metrics; it
// satisfies the onnx backend's Observer.
func (m *Metrics) ModelObserver(model string) *ModelObserver {
	if m == nil {
		return nil
	}
	return &ModelObserver{size: m.batchSize.WithLabelValues(model), wait: m.queueWait.WithLabelValues(model),
		run: m.runTime.WithLabelValues(model), depth: m.queue.WithLabelValues(model), overlaps: m.overlaps.WithLabelValues(model)}
}

// ModelObserver is one model's share of the batch and run metrics.
type ModelObserver struct {
	size, wait, run prometheus.Observer
	depth           prometheus.Gauge
	overlaps        prometheus.Counter
}

// ObserveRun records one ONNX Runtime run.
func (o *ModelObserver) ObserveRun(rows int, queueWait, run time.Duration) {
	o.size.Observe(float64(rows))
	o.wait.Observe(queueWait.Seconds())
	o.run.Observe(run.Seconds())
}

// ObserveOverlappingRun counts a run that overlapped another.
func (o *ModelObserver) ObserveOverlappingRun() { o.overlaps.Inc() }

// ObserveQueueDepth records the batch queue's depth.
func (o *ModelObserver) ObserveQueueDepth(n int) { o.depth.Set(float64(n)) }

// middleware counts and times every request. The model label is the model's
// name only when it is served, so that made-up names cannot grow the
// label set without bound.
func (m *Metrics) middleware(s *Server) gin.HandlerFunc {
	return func(c *gin.Context) {
		m.inflight.Inc()
		start := time.Now()
		c.Next()
		m.inflight.Dec()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		protocol := "other"
		switch {
		case strings.HasPrefix(route, "/v1"):
			protocol = "v1"
		case strings.HasPrefix(route, "/v2"):
			protocol = "v2"
		}
		model := ""
		if name, _, _ := strings.Cut(c.Param("name"), ":"); name != "" {
			model = "unknown"
			if r := s.models.Load(); r != nil {
				if _, err := r.Get(name); err == nil {
					model = name
				}
			}
		}
		m.requests.WithLabelValues(model, protocol, route, strconv.Itoa(c.Writer.Status())).Inc()
		m.duration.WithLabelValues(model, protocol, route).Observe(time.Since(start).Seconds())
	}
}

// stateCollector reports, at scrape time, the replicas of whatever registry
// is being served (it changes on reload) and the cache's counters.
type stateCollector struct {
	s                                               *Server
	healthy, breaker, replicaInflight               *prometheus.Desc
	hits, misses, cacheErrs, corrupt, skip, dropped *prometheus.Desc
}

func newStateCollector(s *Server) *stateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &stateCollector{s: s,
		healthy:         d("chorus_replica_healthy", "1 when health checks and ejection admit the replica.", "model", "version", "replica"),
		breaker:         d("chorus_replica_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open.", "model", "version", "replica"),
		replicaInflight: d("chorus_replica_in_flight", "Requests the replica is serving now.", "model", "version", "replica"),
		hits:            d("chorus_cache_hits_total", "Texts answered from the logits cache."),
		misses:          d("chorus_cache_misses_total", "Texts the logits cache did not hold."),
		cacheErrs:       d("chorus_cache_errors_total", "Cache lookups that failed (every text then a miss)."),
		corrupt:         d("chorus_cache_corrupt_total", "Cached values that did not decode, deleted."),
		skip:            d("chorus_cache_skipped_total", "Redis calls skipped while its breaker was open."),
		dropped:         d("chorus_cache_dropped_writes_total", "Cache fills dropped: write queue full or Redis failing."),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.healthy, c.breaker, c.replicaInflight, c.hits, c.misses, c.cacheErrs, c.corrupt, c.skip, c.dropped} {
		ch <- d
	}
}

var breakerValue = map[string]float64{"closed": 0, "half-open": 1, "open": 2}

// storeCounters is what the metrics read from a store that can skip calls
// and drop writes (Redis does; the in-process LRU does neither).
type storeCounters interface {
	SkippedCalls() uint64
	DroppedWrites() uint64
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if r := c.s.models.Load(); r != nil {
		for _, name := range r.Names() {
			m, _ := r.Get(name)
			pm, ok := m.(*Model)
			if !ok {
				continue // an ensemble has no replicas of its own
			}
			for _, v := range pm.Versions() {
				for _, rep := range v.Pool.Replicas() {
					healthy := 0.0
					if rep.Healthy(now) {
						healthy = 1
					}
					ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, healthy, name, v.Name, rep.Name)
					ch <- prometheus.MustNewConstMetric(c.breaker, prometheus.GaugeValue, breakerValue[rep.BreakerState()], name, v.Name, rep.Name)
					ch <- prometheus.MustNewConstMetric(c.replicaInflight, prometheus.GaugeValue, float64(rep.InFlight()), name, v.Name, rep.Name)
				}
			}
		}
	}
	st := c.s.CacheStats()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(st.Misses))
	ch <- prometheus.MustNewConstMetric(c.cacheErrs, prometheus.CounterValue, float64(st.Errors))
	ch <- prometheus.MustNewConstMetric(c.corrupt, prometheus.CounterValue, float64(st.Corrupt))
	var skipped, dropped uint64
	if sc, ok := c.s.scorer.cacheOpts.Store.(storeCounters); ok {
		skipped, dropped = sc.SkippedCalls(), sc.DroppedWrites()
	}
	ch <- prometheus.MustNewConstMetric(c.skip, prometheus.CounterValue, float64(skipped))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(dropped))
}
