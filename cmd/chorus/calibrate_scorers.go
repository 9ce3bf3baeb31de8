package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/internal/assemble"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/storage"
)

// localScorer scores in-process with the registry's models, through the
// gateway's scorer (without a cache).
type localScorer struct {
	scorer *gateway.Scorer
	reg    *gateway.Registry
	rt     *onnx.Runtime
	model  string
	meta   protocol.ModelMetadata
}

func newLocalScorer(ctx context.Context, f *calibrateFlags, logw io.Writer) (*localScorer, error) {
	// Every temperature is ignored here: calibration fits on raw logits.
	l, err := openLocal(ctx, f, logw, true, nil)
	if err != nil {
		return nil, err
	}
	if _, l.meta, err = l.scorer.Logits(ctx, l.reg, f.model, []string{""}); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

// openLocal loads --config, checked by check (nil: no check), and builds
// its registry on an ONNX runtime of its own; allowMismatch serves models
// whose calibration file was fitted for others.
func openLocal(ctx context.Context, f *calibrateFlags, logw io.Writer, allowMismatch bool, check func(*config.Config) error) (*localScorer, error) {
	cfg, err := config.Load(f.config)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(cfg); err != nil {
			return nil, err
		}
	}
	rt, err := onnx.NewRuntime(f.ortLib)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg, err := assemble.Registry(ctx, cfg, assemble.Deps{Runtime: rt, Hub: storage.HubFromEnv(os.Getenv), Log: log, AllowCalibrationMismatch: allowMismatch})
	if err != nil {
		rt.Close()
		return nil, err
	}
	return &localScorer{scorer: gateway.NewScorer(gateway.CacheOptions{}, nil), reg: reg, rt: rt, model: f.model}, nil
}

func (l *localScorer) score(ctx context.Context, texts []string) (protocol.Logits, error) {
	out, _, err := l.scorer.Logits(ctx, l.reg, l.model, texts)
	return out, err
}
func (l *localScorer) labels() []string    { return l.meta.Labels }
func (l *localScorer) fingerprint() string { return l.meta.Fingerprint }
func (l *localScorer) activation() string  { return l.meta.Activation }
func (l *localScorer) close()              { l.reg.Close(); l.rt.Close() }

// remoteScorer scores against a running gateway over V2, with the kserve
// backend (raw logits as an FP32 tensor).
type remoteScorer struct {
	*kserve.Backend
	fp, act string
}

func newRemoteScorer(ctx context.Context, f *calibrateFlags) (*remoteScorer, error) {
	client := &http.Client{Transport: kserve.NewTransport()}
	md, err := kserve.FetchMetadata(ctx, client, f.url, f.model)
	if err != nil {
		return nil, err
	}
	labels := f.labels
	if ls, ok := md.Parameters["labels"].([]any); ok {
		labels = labels[:0:0]
		for _, l := range ls {
			labels = append(labels, fmt.Sprint(l))
		}
	}
	fp, _ := md.Parameters["fingerprint"].(string)
	act, _ := md.Parameters["activation"].(string)
	b, err := kserve.New(kserve.Config{URL: f.url, Model: f.model, Protocol: "v2", Logits: kserve.LogitsTensor,
		Labels: labels, Timeout: time.Minute, Client: client})
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	return &remoteScorer{Backend: b, fp: fp, act: act}, nil
}

func (r *remoteScorer) score(ctx context.Context, texts []string) (protocol.Logits, error) {
	return r.Predict(ctx, texts)
}
func (r *remoteScorer) labels() []string    { return r.Metadata().Labels }
func (r *remoteScorer) fingerprint() string { return r.fp }
func (r *remoteScorer) activation() string  { return r.act }
func (r *remoteScorer) close()              { _ = r.Close() }
