package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/ensemble"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/gateway/pool"
	"github.com/chorusml/chorus/internal/telemetry"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/storage"
)

// serve runs until ctx ends (SIGINT/SIGTERM), then drains and exits.
func serve(ctx context.Context, cmd *cobra.Command, f *serveFlags, stopSignals context.CancelFunc) error {
	f.httpPortSet = cmd.Flags().Changed("http_port")
	cfg, err := f.loadConfig()
	if err != nil {
		return err
	}
	log, err := newLogger(cmd.ErrOrStderr(), f.logFormat, f.logLevel)
	if err != nil {
		return usageError{err}
	}

	tracing, err := telemetry.FromEnv(ctx, os.Getenv, "chorus", chorusVersion())
	if err != nil {
		return err
	}
	store, closeStore, err := openCache(cfg.Cache, tracing, log)
	if err != nil {
		return err
	}
	// The cache closes last: it flushes the fills of drained requests.
	defer closeStore()
	// Then spans are flushed: the drained requests' spans have ended.
	defer func() {
		if err := tracing.Shutdown(5 * time.Second); err != nil {
			log.Warn("flush traces", slog.Any("error", err))
		}
	}()
	if tracing.Enabled() {
		log.Info("tracing: exporting spans over OTLP (OTEL_* environment)")
	}
	// A registry of our own: nothing registers on the process-wide default.
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := gateway.NewMetrics(promReg, chorusVersion())
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	auth, err := loadAuth(cfg.Auth)
	if err != nil {
		return err
	}
	srv := gateway.NewServer(gateway.ServerOptions{
		Auth:       auth,
		Tracer:     tracing.Provider,
		Propagator: telemetry.Propagator,
		Metrics:    metrics,
		Gatherer:   promReg,
		Log:        log,
		Limits: gateway.Limits{
			MaxBodyBytes: cfg.Server.Limits.MaxBodyBytes,
			MaxInstances: cfg.Server.Limits.MaxInstances,
			MaxTextChars: cfg.Server.Limits.MaxTextChars,
			MaxInFlight:  cfg.Server.Limits.MaxInFlight,
		},
		Version: chorusVersion(),
		Cache:   gateway.CacheOptions{Store: store, Namespace: cfg.Cache.Namespace, TTL: time.Duration(cfg.Cache.TTL)},
	})

	// Listen before loading so liveness answers while models load.
	addr := net.JoinHostPort(cfg.Server.Host, strconv.Itoa(cfg.Server.HTTPPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Bounded reads and writes: a slow client cannot hold a connection.
	to := cfg.Server.Timeouts
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: time.Duration(to.ReadHeader),
		ReadTimeout:       time.Duration(to.Read),
		WriteTimeout:      time.Duration(to.Write),
		IdleTimeout:       time.Duration(to.Idle),
		MaxHeaderBytes:    cfg.Server.Limits.MaxHeaderBytes,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	log.Info("listening", slog.String("addr", ln.Addr().String()))

	rt, err := onnx.NewRuntime(f.ortLib)
	if err != nil {
		_ = httpSrv.Close()
		return err
	}
	// Runtime last: every model's session must be gone before it.
	defer rt.Close()

	hub := storage.HubFromEnv(os.Getenv)
	build := func(c *config.Config) (*gateway.Registry, error) {
		return loadModels(ctx, rt, hub, c, f.allowCalibrationMismatch, metrics, tracing, log)
	}
	reg, err := build(cfg)
	if err != nil {
		_ = httpSrv.Close()
		return err
	}
	// Models after the HTTP server has drained: in-flight requests use them.
	defer func() {
		if r := srv.SetRegistry(nil); r != nil {
			_ = r.Retire()
		}
	}()
	reg.Start(ctx)
	srv.SetRegistry(reg)
	srv.SetReady(true)
	log.Info("ready", slog.Int("models", len(reg.Names())))

	reloads, stopWatch, err := reloadTriggers(ctx, f, log)
	if err != nil {
		return err
	}
	defer stopWatch()
	for done := false; !done; {
		select {
		case err := <-serveErr:
			return fmt.Errorf("http server: %w", err)
		case reason := <-reloads:
			reload(ctx, f.config, cfg, srv, build, reason, log)
		case <-ctx.Done():
			done = true
		}
	}
	// A second signal now kills the process the default way.
	stopSignals()
	start := time.Now()
	log.Info("shutting down", slog.Duration("grace", time.Duration(cfg.Server.ShutdownGrace)))
	// Not ready first, so load balancers stop sending before we stop accepting.
	srv.SetReady(false)
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Server.ShutdownGrace))
	defer cancel()
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	log.Info("stopped", slog.Duration("drain", time.Since(start)))
	return nil
}

// reloadTriggers yields a reason each time the registry should be reloaded:
// on SIGHUP, and with --watch when the registry file changes. Reloading
// needs a registry file (not the single-model flags).
func reloadTriggers(ctx context.Context, f *serveFlags, log *slog.Logger) (<-chan string, func(), error) {
	out := make(chan string, 1)
	send := func(reason string) {
		select {
		case out <- reason:
		default: // a reload is already pending
		}
	}
	if f.config == "" {
		return out, func() {}, nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-hup:
				send("SIGHUP")
			case <-ctx.Done():
				return
			}
		}
	}()
	if !f.watch {
		return out, stop, nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("--watch: %w", err)
	}
	// Watch the folder: editors replace files rather than write them in place.
	abs, _ := filepath.Abs(f.config)
	if err := w.Add(filepath.Dir(abs)); err != nil {
		w.Close()
		stop()
		return nil, nil, fmt.Errorf("--watch: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Close()
		var debounce <-chan time.Time
		for {
			select {
			case ev := <-w.Events:
				if filepath.Clean(ev.Name) == abs && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
					debounce = time.After(200 * time.Millisecond) // one reload per burst of writes
				}
			case err := <-w.Errors:
				log.Warn("watch", slog.Any("error", err))
			case <-debounce:
				send("file changed")
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, stop, nil
}

// reload builds the new registry's models and pools, swaps them in
// atomically, and closes the old registry once its requests have finished.
// A file that does not load keeps the registry in service as it is.
func reload(ctx context.Context, path string, current *config.Config, srv *gateway.Server, build func(*config.Config) (*gateway.Registry, error), reason string, log *slog.Logger) {
	start := time.Now()
	cfg, err := config.Load(path)
	if err == nil && !reflect.DeepEqual(cfg.Server, current.Server) {
		log.Warn("reload: server settings (port, limits, timeouts) take effect on restart only")
	}
	var reg *gateway.Registry
	if err == nil {
		reg, err = build(cfg)
	}
	if err != nil {
		log.Error("reload failed; keeping the registry in service", slog.String("reason", reason), slog.Any("error", err))
		return
	}
	reg.Start(ctx)
	old := srv.SetRegistry(reg)
	if old != nil {
		_ = old.Retire()
	}
	log.Info("reloaded", slog.String("reason", reason), slog.Int("models", len(reg.Names())), slog.Duration("took", time.Since(start)))
}

// loadModels builds every model: each replica's backend, a pool per
// version, label checks. On any failure it closes what it opened, so start-up
// is all or nothing.
func loadModels(ctx context.Context, rt *onnx.Runtime, hub *storage.Hub, cfg *config.Config, allowMismatch bool, metrics *gateway.Metrics, tracing *telemetry.Tracing, log *slog.Logger) (*gateway.Registry, error) {
	if tracing == nil {
		tracing = &telemetry.Tracing{Provider: noop.NewTracerProvider()}
	}
	b := &builder{rt: rt, hub: hub, clients: map[config.TLS]*http.Client{}, metrics: metrics, tracing: tracing}
	var models []*gateway.Model
	byName := map[string]*gateway.Model{}
	fail := func(err error) (*gateway.Registry, error) {
		for _, m := range models {
			_ = m.Close()
		}
		b.closeOpen()
		return nil, err
	}
	for _, mc := range cfg.Models {
		if mc.IsEnsemble() {
			continue // after the models it combines
		}
		versions := mc.Versions
		if len(versions) == 0 {
			versions = []config.Version{{Name: mc.Version, Replicas: mc.Replicas}}
		}
		var vs []*gateway.Version
		for _, vc := range versions {
			p, err := b.pool(ctx, mc, vc)
			if err != nil {
				return fail(err)
			}
			vs = append(vs, &gateway.Version{Name: vc.Name, Traffic: vc.Traffic, Pool: p})
		}
		m, err := gateway.NewModel(mc.Name, modeOf(mc), mc.Labels, vs, mc.DefaultVersion)
		if err != nil {
			return fail(err) // closes the replicas the pools hold
		}
		m.CacheEnabled, m.CacheTTL = mc.Cache.On(), time.Duration(mc.Cache.TTL)
		b.open = nil // the model owns its replicas now
		models = append(models, m)
		byName[mc.Name] = m
		if err := setTemperature(m, mc, allowMismatch); err != nil {
			return fail(err)
		}
		log.Info("model loaded", slog.String("model", mc.Name), slog.Int("versions", len(vs)),
			slog.Any("labels", m.Metadata().Labels), slog.String("fingerprint", short(m.Metadata().Fingerprint)),
			slog.Float64("temperature", m.Temperature))
	}
	for _, mc := range cfg.Models {
		if !mc.IsEnsemble() {
			continue
		}
		var members []gateway.EnsembleMember
		for _, mem := range mc.Members {
			members = append(members, gateway.EnsembleMember{Model: byName[mem.Name], Weight: mem.Weight, LabelMap: mem.LabelMap})
		}
		m, err := gateway.NewEnsemble(mc.Name, modeOf(mc), mc.Labels, members, ensemble.Combine(mc.Combine), mc.MinMembers)
		if err != nil {
			return fail(err)
		}
		m.CacheEnabled = mc.Cache.On()
		if err := setTemperature(m, mc, allowMismatch); err != nil {
			return fail(err)
		}
		models = append(models, m)
		log.Info("ensemble loaded", slog.String("model", mc.Name), slog.Int("members", len(members)),
			slog.String("combine", mc.Combine), slog.Float64("temperature", m.Temperature))
	}
	reg, err := gateway.NewRegistry(models)
	if err != nil {
		return fail(err)
	}
	return reg, nil
}

// loadAuth reads the API keys, if any; keys are kept only as hashes.
func loadAuth(a config.Auth) (*gateway.Auth, error) {
	if a.KeysFile == "" {
		return nil, nil
	}
	keys, err := config.LoadKeys(a.KeysFile, os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("auth.keys_file: %w", err)
	}
	var out []gateway.APIKey
	for _, k := range keys {
		out = append(out, gateway.APIKey{Name: k.Name, Hash: k.Hash, Models: k.Models, Rate: k.Rate, Burst: k.Burst})
	}
	return gateway.NewAuth(out), nil
}

// setTemperature applies a model's temperature, from the registry or from
// a calibration file fitted for this very model.
func setTemperature(m *gateway.Model, mc config.Model, allowMismatch bool) error {
	m.Temperature = 1
	if mc.Temperature > 0 {
		m.Temperature = mc.Temperature
	}
	if mc.Calibration == "" {
		return nil
	}
	raw, err := os.ReadFile(mc.Calibration)
	if err != nil {
		return fmt.Errorf("models[%s].calibration: %w", mc.Name, err)
	}
	var cf calibration.File
	if err := json.Unmarshal(raw, &cf); err != nil {
		return fmt.Errorf("models[%s].calibration: %s: %w", mc.Name, mc.Calibration, err)
	}
	if err := cf.CheckFor(m.Metadata().Fingerprint, m.Metadata().Labels); err != nil {
		if !allowMismatch || !(cf.Temperature > 0) {
			return fmt.Errorf("models[%s].calibration: %s: %w", mc.Name, mc.Calibration, err)
		}
	}
	m.Temperature = cf.Temperature
	return nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// builder turns replica configs into backends, sharing one HTTP client
// (and so one connection pool) per TLS setting.
type builder struct {
	rt      *onnx.Runtime
	hub     *storage.Hub
	clients map[config.TLS]*http.Client
	metrics *gateway.Metrics // nil: no run metrics
	tracing *telemetry.Tracing
	open    []protocol.Predictor // opened, not yet owned by a model
}

func (b *builder) tracer() trace.Tracer {
	return b.tracing.Provider.Tracer("github.com/chorusml/chorus")
}

func (b *builder) closeOpen() {
	for _, p := range b.open {
		_ = p.Close()
	}
	b.open = nil
}

func (b *builder) pool(ctx context.Context, mc config.Model, vc config.Version) (*pool.Pool, error) {
	var rs []*pool.Replica
	for i, rc := range vc.Replicas {
		path := fmt.Sprintf("models[%s].replicas[%d]", mc.Name, i)
		if vc.Name != "" && len(mc.Versions) > 0 {
			path = fmt.Sprintf("models[%s].versions[%s].replicas[%d]", mc.Name, vc.Name, i)
		}
		p, name, err := b.backend(ctx, mc, rc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		b.open = append(b.open, p)
		rs = append(rs, pool.NewReplica(name, rc.Weight, p))
	}
	pc := mc.Pool
	return pool.New(rs, pool.Options{
		Tracer:              b.tracer(),
		Policy:              pc.Policy,
		Attempts:            pc.Attempts,
		Budget:              time.Duration(pc.Budget),
		MaxInFlight:         pc.MaxInFlight,
		EjectAfter:          pc.Ejection.After,
		EjectFor:            time.Duration(pc.Ejection.Base),
		EjectMax:            time.Duration(pc.Ejection.Max),
		BreakerMinRequests:  uint32(pc.Breaker.MinRequests),
		BreakerFailureRatio: pc.Breaker.FailureRatio,
		BreakerWindow:       time.Duration(pc.Breaker.Window),
		BreakerTimeout:      time.Duration(pc.Breaker.Timeout),
		HealthInterval:      time.Duration(pc.Health.Interval),
		HealthTimeout:       time.Duration(pc.Health.Timeout),
		Fall:                pc.Health.Fall,
		Rise:                pc.Health.Rise,
	})
}

func (b *builder) backend(ctx context.Context, mc config.Model, rc config.Replica) (protocol.Predictor, string, error) {
	if rc.Type == config.TypeKServe {
		client, err := b.client(rc.TLS)
		if err != nil {
			return nil, "", err
		}
		k, err := kserve.New(kserve.Config{URL: rc.URL, Model: rc.Model, Protocol: rc.Protocol, Logits: rc.Logits,
			OutputName: rc.Output, Labels: mc.Labels, Revision: rc.Revision, Timeout: time.Duration(rc.Timeout),
			Headers: rc.Headers, Client: client})
		if err != nil {
			return nil, "", err
		}
		return k, k.Name(), nil
	}
	dir, err := storage.ResolveGraph(ctx, rc.Location, b.hub, rc.ONNXFile)
	if err != nil {
		return nil, "", err
	}
	m, err := b.rt.Open(dir, onnx.Options{MaxLength: rc.MaxLength, GraphFile: rc.ONNXFile, IntraOpThreads: rc.IntraOpThreads,
		InterOpThreads: rc.InterOpThreads, GraphOptimization: rc.GraphOptimization, MemoryArena: rc.MemoryArena,
		Device: rc.Device, Batching: onnx.Batching{MaxBatchSize: rc.Batching.MaxBatchSize, MaxBatchTokens: rc.Batching.MaxBatchTokens,
			MaxQueueDelay: time.Duration(rc.Batching.MaxQueueDelay), QueueSize: rc.Batching.QueueSize},
		Observer: b.observer(mc.Name), Tracer: b.tracer(), MaxRequestTokens: rc.MaxRequestTokens})
	if err != nil {
		return nil, "", err
	}
	return m, "onnx:" + rc.Location.String(), nil
}

// observer is the model's run metrics, or none (a nil *ModelObserver would
// be a non-nil interface).
func (b *builder) observer(model string) onnx.Observer {
	if b.metrics == nil {
		return nil
	}
	return b.metrics.ModelObserver(model)
}

func (b *builder) client(t config.TLS) (*http.Client, error) {
	if c, ok := b.clients[t]; ok {
		return c, nil
	}
	tr := kserve.NewTransport()
	if t != (config.TLS{}) {
		tc := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in, for tests
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("tls.ca_file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls.ca_file %s: no certificates", t.CAFile)
			}
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("tls client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	var rt http.RoundTripper = tr
	if b.tracing.Enabled() {
		// A span per remote attempt, and the trace context on the wire so
		// that a Chorus predictor behind us continues the same trace.
		rt = otelhttp.NewTransport(tr, otelhttp.WithTracerProvider(b.tracing.Provider), otelhttp.WithPropagators(telemetry.Propagator))
	}
	c := &http.Client{Transport: rt}
	b.clients[t] = c
	return c, nil
}

// openCache builds the logits store: Redis when configured, else an
// in-process LRU; nil when the cache is off. Redis is not required to be up:
// the cache fails open.
func openCache(c config.Cache, tracing *telemetry.Tracing, log *slog.Logger) (gateway.LogitsCache, func(), error) {
	if !c.On() {
		log.Info("cache off")
		return nil, func() {}, nil
	}
	ttl := cmp.Or(time.Duration(c.TTL), 24*time.Hour)
	if c.URL == "" && len(c.Addrs) == 0 {
		log.Info("cache: in-process LRU", slog.Int("max_entries", cmp.Or(c.MaxEntries, 100_000)))
		return cache.NewLRU(cmp.Or(c.MaxEntries, 100_000), ttl), func() {}, nil
	}
	r, err := cache.NewRedis(cache.RedisOptions{URL: c.URL, Addrs: c.Addrs, MasterName: c.MasterName,
		Password: os.Getenv("CHORUS_REDIS_PASSWORD"), Timeout: time.Duration(c.Timeout), WriteQueue: c.WriteQueue,
		TracerProvider: tracerOrNil(tracing)})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.Ping(ctx); err != nil {
		log.Warn("cache: Redis not reachable yet; serving without it until it is", slog.String("redis", r.Describe()), slog.Any("error", err))
	} else {
		log.Info("cache: Redis", slog.String("redis", r.Describe()))
	}
	return r, func() { _ = r.Close() }, nil
}

func modeOf(m config.Model) gateway.Mode {
	switch {
	case m.ReturnProbabilities:
		return gateway.ModeProbabilities
	case m.DisablePostprocess:
		return gateway.ModeRawLogits
	default:
		return gateway.ModeLabel
	}
}

func newLogger(w interface{ Write([]byte) (int, error) }, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, errors.New("--log-format must be text or json")
	}
}

// tracerOrNil is the provider when spans are exported, else nil (no
// instrumentation at all, rather than a no-op one).
func tracerOrNil(t *telemetry.Tracing) trace.TracerProvider {
	if t.Enabled() {
		return t.Provider
	}
	return nil
}
