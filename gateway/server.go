package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc/health"

	"github.com/chorusml/chorus/api"
	"github.com/chorusml/chorus/protocol"
)

// Limits bound one request, and the server.
type Limits struct {
	MaxBodyBytes int64
	MaxInstances int
	MaxTextChars int
	// MaxInFlight bounds inference requests served at once (0: no bound).
	MaxInFlight int
}

// ServerOptions are a Server's dependencies.
type ServerOptions struct {
	Log     *slog.Logger
	Limits  Limits
	Version string // Chorus's version, for GET /v2
	// Cache holds logits per text; a nil Store turns caching off.
	Cache CacheOptions
	// Metrics, when set, count requests; Gatherer, when set, is served at
	// /metrics (Prometheus text format).
	Metrics  *Metrics
	Gatherer prometheus.Gatherer
	// Tracer and Propagator trace requests (nil: no tracing). Incoming
	// trace context is continued, outgoing calls carry it on.
	Tracer     trace.TracerProvider
	Propagator propagation.TextMapPropagator
	// Auth, when set, requires an API key on the model routes (health and
	// metrics stay open for probes and scrapers).
	Auth *Auth
	// Monitoring bounds the answers kept for feedback and the rolling
	// calibration metrics (monitor.go).
	Monitoring MonitorOptions
	// TimingHeaders adds TEI's timing headers (x-compute-time, …) to every
	// inference answer (config: server.timing_headers, default on).
	TimingHeaders bool
}

// Server serves the V1 and V2 routes over a registry of models.
type Server struct {
	log     *slog.Logger
	limits  Limits
	version string
	tracer  trace.Tracer
	// scorer does the work behind the routes: cache, models, ensembles.
	scorer *Scorer
	// monitor watches answered confidence and labels fed back.
	monitor *monitor
	// models is nil until the models have loaded; swapped whole on reload.
	models atomic.Pointer[Registry]
	// ready is the readiness state: false while loading, and again from the
	// moment shutdown starts. Liveness does not depend on it.
	ready  atomic.Bool
	engine *gin.Engine
	// For the gRPC service (grpc.go): what the HTTP middleware has, and
	// the in-flight slots both transports share (nil: no bound).
	metrics    *Metrics
	auth       *Auth
	propagator propagation.TextMapPropagator
	slots      chan struct{}
	grpcHealth atomic.Pointer[health.Server]
}

// NewServer builds the routes. It serves nothing until SetRegistry and
// SetReady(true) are called; liveness answers from the start.
func NewServer(o ServerOptions) *Server {
	if o.Tracer == nil {
		o.Tracer = noop.NewTracerProvider()
	}
	if o.Propagator == nil {
		o.Propagator = propagation.TraceContext{}
	}
	s := &Server{log: o.Log, limits: o.Limits, version: o.Version, scorer: NewScorer(o.Cache, o.Tracer),
		monitor: newMonitor(o.Monitoring), tracer: tracerOf(o.Tracer),
		metrics: o.Metrics, auth: o.Auth, propagator: o.Propagator}
	if o.Limits.MaxInFlight > 0 {
		s.slots = make(chan struct{}, o.Limits.MaxInFlight)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	// Tracing first, so that the access line carries the trace id.
	e.Use(traceRequests(o.Tracer, o.Propagator), s.requestIDAndLog, s.recoverJSON, s.pinRegistry)
	if o.TimingHeaders {
		e.Use(timingHeaders)
	}
	if o.Metrics != nil {
		e.Use(o.Metrics.middleware(s))
		if err := o.Metrics.reg.Register(newStateCollector(s)); err != nil {
			s.log.Error("register state metrics", slog.Any(logKeyError, err))
		}
		if err := s.monitor.register(o.Metrics.reg); err != nil {
			s.log.Error("register monitoring metrics", slog.Any(logKeyError, err))
		}
	}
	if o.Gatherer != nil {
		e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{})))
	}
	e.NoRoute(s.noRoute)
	e.NoMethod(s.noMethod)

	e.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", api.OpenAPI) })
	registerDocs(e)

	// Open to probes: liveness, readiness, server metadata.
	e.GET("/", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "alive"}) })
	e.GET("/v2", s.v2ServerMetadata)
	e.GET("/v2/health/live", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"live": true}) })
	e.GET("/v2/health/ready", s.v2ServerReady)

	// The model routes: API keys (when configured), then the in-flight bound.
	api := e.Group("/")
	if o.Auth != nil {
		api.Use(o.Auth.middleware(s))
	}
	if o.Limits.MaxInFlight > 0 {
		api.Use(admission(s, o.Limits.MaxInFlight))
	}
	// KServe V1.
	api.GET("/v1/models", s.v1List)
	api.GET("/v1/models/:name", s.modelReady)
	api.POST("/v1/models/:name", s.v1Predict) // ":predict" is part of the segment
	// Open Inference Protocol V2.
	api.GET("/v2/models", s.v2List)
	for _, p := range []string{"/v2/models/:name", "/v2/models/:name/versions/:version"} {
		api.GET(p, s.v2ModelMetadata)
		api.GET(p+"/ready", s.modelReady)
		api.POST(p+"/infer", s.v2Infer)
	}
	api.POST("/v2/models/:name/feedback", s.v2Feedback)
	s.engine = e
	return s
}

// noRoute answers paths that name no route.
func (s *Server) noRoute(c *gin.Context) {
	s.abort(c, fmt.Errorf("%w %s %s", errNoRoute, c.Request.Method, c.Request.URL.Path))
}

// noMethod answers a route's wrong method, with the methods it takes.
func (s *Server) noMethod(c *gin.Context) {
	// gin lists every method of /v1/models/:name, but ":predict" takes
	// POST only and the bare model path GET only.
	if p := c.Request.URL.Path; strings.HasPrefix(p, "/v1/models/") && strings.Count(p, "/") == 3 {
		if strings.Contains(p[len("/v1/models/"):], ":") {
			c.Header("Allow", "POST")
		} else {
			c.Header("Allow", "GET")
		}
	}
	s.abort(c, fmt.Errorf("%w: method %s not allowed on %s", errMethodNotAllowed, c.Request.Method, c.Request.URL.Path))
}

// Handler is the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.engine }

// CacheStats reads the cache counters.
func (s *Server) CacheStats() CacheStats { return s.scorer.CacheStats() }

// SetRegistry installs the models to serve and returns the previous set.
func (s *Server) SetRegistry(r *Registry) *Registry {
	old := s.models.Swap(r)
	s.setGRPCHealth()
	return old
}

// SetReady flips readiness (and the gRPC health service's status).
func (s *Server) SetReady(ready bool) {
	s.ready.Store(ready)
	s.setGRPCHealth()
}

// Ready reports readiness: models loaded and not shutting down.
func (s *Server) Ready() bool { return s.ready.Load() && s.models.Load() != nil }

const registryKey = "chorus.registry"

// pinRegistry holds the registry being served for the whole request, so that
// a reload swapping in a new one closes the old only after this request.
func (s *Server) pinRegistry(c *gin.Context) {
	r, release := s.pin()
	defer release()
	if r != nil {
		c.Set(registryKey, r)
	}
	c.Next()
}

// pin acquires the registry being served (nil while loading) until release.
func (s *Server) pin() (*Registry, func()) {
	for {
		r := s.models.Load()
		if r == nil {
			return nil, func() {}
		}
		if r.acquire() {
			return r, r.release
		}
		// Retired between Load and acquire: a new registry is in place.
	}
}

// model resolves the model a request names and the version to serve it
// (the one in the path; else by traffic split or the default), or says why
// it cannot. While the server drains, models still answer: readiness tells
// load balancers to stop sending, and what was accepted is served.
func (s *Server) model(c *gin.Context) (Servable, *Version, error) {
	r, _ := c.Value(registryKey).(*Registry)
	return resolve(r, c.Param("name"), c.Param("version"))
}

// resolve finds a model in r and routes to a version ("" by traffic or the
// default).
func resolve(r *Registry, name, version string) (Servable, *Version, error) {
	if r == nil {
		return nil, nil, fmt.Errorf("%w: models are still loading", protocol.ErrNotReady)
	}
	m, err := r.Get(name)
	if err != nil {
		return nil, nil, err
	}
	v, err := m.Route(version)
	if err != nil {
		return nil, nil, err
	}
	return m, v, nil
}

// readBody reads at most MaxBodyBytes.
func (s *Server) readBody(c *gin.Context) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.limits.MaxBodyBytes))
	if err != nil {
		return nil, fmt.Errorf("request body larger than %d bytes: %w", s.limits.MaxBodyBytes, err)
	}
	return body, nil
}

// checkTexts applies the per-request limits.
func (s *Server) checkTexts(texts []string) error {
	if len(texts) > s.limits.MaxInstances {
		return fmt.Errorf("%w: %d texts in one request, the limit is %d", protocol.ErrTooLarge, len(texts), s.limits.MaxInstances)
	}
	for i, t := range texts {
		if n := utf8.RuneCountInString(t); n > s.limits.MaxTextChars {
			return fmt.Errorf("%w: text %d has %d characters, the limit is %d", protocol.ErrTooLarge, i, n, s.limits.MaxTextChars)
		}
	}
	return nil
}

const requestIDKey = "chorus.request_id"

// requestIDAndLog tags each request with an id (the caller's X-Request-Id,
// else a new UUID) and writes one access line, without request content.
func (s *Server) requestIDAndLog(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if id == "" || len(id) > 128 {
		id = uuid.NewString()
	}
	c.Set(requestIDKey, id)
	c.Header("X-Request-Id", id)
	if !s.log.Enabled(c.Request.Context(), slog.LevelInfo) {
		c.Next() // no access log: not even its clock reading
		return
	}
	start := time.Now()
	c.Next()
	attrs := []slog.Attr{slog.String(logKeyRequestID, id)}
	if sc := trace.SpanContextFromContext(c.Request.Context()); sc.HasTraceID() {
		attrs = append(attrs, slog.String(logKeyTraceID, sc.TraceID().String()))
	}
	s.log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", append(attrs,
		slog.String(logKeyMethod, c.Request.Method),
		slog.String(logKeyPath, c.Request.URL.Path),
		slog.Int(logKeyStatus, c.Writer.Status()),
		slog.Duration(logKeyDuration, time.Since(start)))...)
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// recoverJSON turns a panic into a logged 500 with the request id: a bug
// must never take the process down or answer with an empty body.
func (s *Server) recoverJSON(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler { //nolint:errorlint // a recovered value, compared as net/http documents
				panic(p)
			}
			s.abort(c, fmt.Errorf("panic: %v", p))
		}
	}()
	c.Next()
}

// traceRequests starts each request's server span. A provider that records
// nothing (tracing off) needs only the incoming trace context, for the
// access log and the calls to remote replicas: otelgin's spans and HTTP
// metrics would cost every request allocations for nothing.
func traceRequests(tp trace.TracerProvider, p propagation.TextMapPropagator) gin.HandlerFunc {
	if !tracingOff(tp) {
		return otelgin.Middleware("chorus", otelgin.WithTracerProvider(tp), otelgin.WithPropagators(p))
	}
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		if in := p.Extract(ctx, propagation.HeaderCarrier(c.Request.Header)); in != ctx {
			c.Request = c.Request.WithContext(in)
		}
		c.Next()
	}
}
