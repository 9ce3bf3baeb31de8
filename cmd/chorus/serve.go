package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/storage"
)

// serve runs until ctx ends (SIGINT/SIGTERM), then drains and exits.
func serve(ctx context.Context, cmd *cobra.Command, f *serveFlags, stopSignals context.CancelFunc) error {
	cfg, err := f.loadConfig()
	if err != nil {
		return err
	}
	log, err := newLogger(cmd.ErrOrStderr(), f.logFormat, f.logLevel)
	if err != nil {
		return usageError{err}
	}

	srv := gateway.NewServer(log, gateway.Limits{
		MaxBodyBytes: cfg.Server.Limits.MaxBodyBytes,
		MaxInstances: cfg.Server.Limits.MaxInstances,
		MaxTextChars: cfg.Server.Limits.MaxTextChars,
	}, chorusVersion())

	// Listen before loading so liveness answers while models load.
	addr := net.JoinHostPort(cfg.Server.Host, strconv.Itoa(cfg.Server.HTTPPort))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
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
	reg, err := loadModels(ctx, rt, hub, cfg, log)
	if err != nil {
		_ = httpSrv.Close()
		return err
	}
	// Models after the HTTP server has drained: in-flight requests use them.
	defer reg.Close()
	srv.SetRegistry(reg)
	srv.SetReady(true)
	log.Info("ready", slog.Int("models", len(reg.Names())))

	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	// A second signal now kills the process the default way.
	stopSignals()
	log.Info("shutting down", slog.Duration("grace", time.Duration(cfg.Server.ShutdownGrace)))
	// Not ready first, so load balancers stop sending before we stop accepting.
	srv.SetReady(false)
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Server.ShutdownGrace))
	defer cancel()
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	log.Info("stopped")
	return nil
}

// loadModels opens every replica of every model; on any failure it closes
// what it opened, so start-up is all or nothing.
func loadModels(ctx context.Context, rt *onnx.Runtime, hub *storage.Hub, cfg *config.Config, log *slog.Logger) (*gateway.Registry, error) {
	var models []*gateway.Model
	closeAll := func() {
		for _, m := range models {
			_ = m.Close()
		}
	}
	for _, mc := range cfg.Models {
		var replicas []protocol.Predictor
		for i, rc := range mc.Replicas {
			if err := ctx.Err(); err != nil {
				closeAll()
				return nil, fmt.Errorf("loading interrupted: %w", err)
			}
			dir, err := storage.Resolve(ctx, rc.Location, hub)
			var p *onnx.Model
			if err == nil {
				p, err = rt.Open(dir, onnx.Options{MaxLength: rc.MaxLength, IntraOpThreads: rc.IntraOpThreads})
			}
			if err != nil {
				for _, r := range replicas {
					_ = r.Close()
				}
				closeAll()
				return nil, fmt.Errorf("models[%s].replicas[%d]: %w", mc.Name, i, err)
			}
			replicas = append(replicas, p)
		}
		m, err := gateway.NewModel(mc.Name, mc.Version, modeOf(mc), replicas)
		if err != nil {
			for _, r := range replicas {
				_ = r.Close()
			}
			closeAll()
			return nil, err
		}
		models = append(models, m)
		log.Info("model loaded", slog.String("model", mc.Name), slog.Int("replicas", len(replicas)),
			slog.Any("labels", m.Metadata().Labels), slog.String("fingerprint", m.Metadata().Fingerprint[:12]))
	}
	reg, err := gateway.NewRegistry(models)
	if err != nil {
		closeAll()
		return nil, err
	}
	return reg, nil
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
