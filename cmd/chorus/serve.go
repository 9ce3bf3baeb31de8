package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/internal/assemble"
	"github.com/chorusml/chorus/internal/telemetry"
	"github.com/chorusml/chorus/storage"
)

// serve runs until ctx ends (SIGINT/SIGTERM), then drains and exits.
func serve(ctx context.Context, cmd *cobra.Command, f *serveFlags, stopSignals context.CancelFunc) error {
	cfg, log, err := f.setup(cmd)
	if err != nil {
		return err
	}
	if os.Getenv("GOGC") == "" { // GOGC, when set, wins, as for any Go program
		debug.SetGCPercent(cfg.Server.GCPercent)
	}
	// Request ids are random UUIDs; the pool reads crypto/rand a few KiB at
	// a time rather than 16 bytes per request. Set before any is made.
	uuid.EnableRandPool()
	tracing, err := telemetry.FromEnv(ctx, os.Getenv, "chorus", chorusVersion())
	if err != nil {
		return err
	}
	store, closeStore, err := assemble.Cache(cfg.Cache, tracing, log)
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
	srv, metrics, err := newServer(cfg, store, tracing, log)
	if err != nil {
		return err
	}
	// Listen before loading so liveness answers while models load. The
	// bound address is logged whatever --log-level says: with port 0 it is
	// the only way to learn the port.
	always, _ := newLogger(cmd.ErrOrStderr(), f.logFormat, "info")
	if f.pprofAddr != "" {
		stop, err := servePprof(f.pprofAddr, always)
		if err != nil {
			return err
		}
		defer stop() // on every return, early ones too
	}
	httpSrv, serveErr, err := listen(cfg.Server, srv.Handler(), always)
	if err != nil {
		return err
	}
	// gRPC (OIP, grpc.go) listens beside HTTP and drains with it.
	grpcLn, err := startGRPC(cfg, srv, always)
	if err != nil {
		_ = httpSrv.Close()
		return err
	}
	defer grpcLn.close() // a no-op after the drain; cuts it on early returns

	rt, err := onnx.NewRuntime(f.ortLib)
	if err != nil {
		_ = httpSrv.Close()
		return err
	}
	// Runtime last: every model's session must be gone before it.
	defer rt.Close()

	deps := assemble.Deps{Runtime: rt, Hub: storage.HubFromEnv(os.Getenv), Metrics: metrics, Tracing: tracing, Log: log, Cache: store,
		AllowCalibrationMismatch: f.allowCalibrationMismatch}
	build := func(c *config.Config) (*gateway.Registry, error) { return assemble.Registry(ctx, c, deps) }
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
	if err := waitForEnd(ctx, serveErr, grpcLn.errs(), reloads, func(reason string) { reload(ctx, f.config, cfg, srv, build, reason, log) }); err != nil {
		return err
	}
	// A second signal now kills the process the default way.
	stopSignals()
	return drain(srv, httpSrv, grpcLn, time.Duration(cfg.Server.ShutdownGrace), log)
}

// waitForEnd reloads on each trigger until ctx ends (nil) or the HTTP or
// gRPC server fails.
func waitForEnd(ctx context.Context, serveErr, grpcErr <-chan error, reloads <-chan string, reload func(reason string)) error {
	for {
		select {
		case err := <-serveErr:
			return fmt.Errorf("http server: %w", err)
		case err := <-grpcErr:
			return fmt.Errorf("grpc server: %w", err)
		case reason := <-reloads:
			reload(reason)
		case <-ctx.Done():
			return nil
		}
	}
}

// drain stops readiness, then serves the requests already accepted for up
// to grace.
func drain(srv *gateway.Server, httpSrv *http.Server, grpcLn *grpcListener, grace time.Duration, log *slog.Logger) error {
	start := time.Now()
	log.Info("shutting down", slog.Duration("grace", grace))
	// Not ready first, so load balancers stop sending before we stop accepting.
	srv.SetReady(false)
	shutCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	grpcDrained := grpcLn.drain(shutCtx) // gRPC drains beside HTTP, in the same grace
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	<-grpcDrained
	log.Info("stopped", slog.Duration("drain", time.Since(start)))
	return nil
}

// setup reads the registry (or the KServe-style flags) and makes the logger.
func (f *serveFlags) setup(cmd *cobra.Command) (*config.Config, *slog.Logger, error) {
	f.httpPortSet = cmd.Flags().Changed("http_port")
	f.grpcPortSet = cmd.Flags().Changed("grpc_port")
	cfg, err := f.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	log, err := newLogger(cmd.ErrOrStderr(), f.logFormat, f.logLevel)
	if err != nil {
		return nil, nil, usageError{err}
	}
	if err := f.kserve.apply(cmd.Flags(), cfg, f.config == ""); err != nil {
		return nil, nil, err
	}
	f.kserve.logIgnored(log)
	return cfg, log, nil
}

// newServer builds the gateway with its metrics registry and API keys.
func newServer(cfg *config.Config, store gateway.LogitsCache, tracing *telemetry.Tracing, log *slog.Logger) (*gateway.Server, *gateway.Metrics, error) {
	if tracing.Enabled() {
		log.Info("tracing: exporting spans over OTLP (OTEL_* environment)")
	}
	// A registry of our own: nothing registers on the process-wide default.
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := gateway.NewMetrics(promReg, chorusVersion())
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: %w", err)
	}
	auth, err := assemble.Auth(cfg.Auth)
	if err != nil {
		return nil, nil, err
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
		Monitoring: gateway.MonitorOptions{Window: cfg.Server.Monitoring.Window,
			Remember: cfg.Server.Monitoring.Remember},
		TimingHeaders: *cfg.Server.TimingHeaders,
	})
	return srv, metrics, nil
}

// listen opens the HTTP port and serves h on it; serveErr reports the
// server's end.
func listen(s config.Server, h http.Handler, log *slog.Logger) (*http.Server, <-chan error, error) {
	addr := net.JoinHostPort(s.Host, strconv.Itoa(s.HTTPPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	// Bounded reads and writes: a slow client cannot hold a connection.
	to := s.Timeouts
	httpSrv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: time.Duration(to.ReadHeader),
		ReadTimeout:       time.Duration(to.Read),
		WriteTimeout:      time.Duration(to.Write),
		IdleTimeout:       time.Duration(to.Idle),
		MaxHeaderBytes:    s.Limits.MaxHeaderBytes,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	log.Info("listening", slog.String("addr", ln.Addr().String()))
	return httpSrv, serveErr, nil
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
