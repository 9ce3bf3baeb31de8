package assemble

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/ensemble"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/internal/telemetry"
	"github.com/chorusml/chorus/storage"
)

// Deps are what building needs besides the registry.
type Deps struct {
	Runtime *onnx.Runtime
	Hub     *storage.Hub
	// Metrics receives in-process models' run metrics (nil: none).
	Metrics *gateway.Metrics
	// Tracing traces backends (nil: no spans).
	Tracing *telemetry.Tracing
	Log     *slog.Logger
	// Cache is the logits cache: models with long_text mode chunk keep
	// their windows' logits in it too (nil: they do not).
	Cache gateway.LogitsCache
	// AllowCalibrationMismatch uses calibration files fitted for another
	// fingerprint (serve --allow-calibration-mismatch).
	AllowCalibrationMismatch bool
}

// Registry builds every model of cfg: each replica's backend, a pool per
// version, label and calibration checks, then the ensembles over them. On
// any failure it closes what it opened, so building is all or nothing.
func Registry(ctx context.Context, cfg *config.Config, d Deps) (*gateway.Registry, error) {
	if d.Tracing == nil {
		d.Tracing = &telemetry.Tracing{Provider: noop.NewTracerProvider()}
	}
	b := &builder{Deps: d, clients: map[config.TLS]*http.Client{}, cache: cfg.Cache}
	var servables []gateway.Servable
	models := map[string]*gateway.Model{}
	byName := map[string]gateway.Servable{} // models and ensembles: what a cascade's stages may be
	fail := func(err error) (*gateway.Registry, error) {
		for _, s := range servables {
			_ = s.Close()
		}
		b.closeOpen()
		return nil, err
	}
	for _, mc := range cfg.Models {
		if mc.IsEnsemble() || mc.IsCascade() {
			continue // after the models they combine
		}
		m, err := b.model(ctx, mc)
		if err != nil {
			return fail(err)
		}
		servables = append(servables, m)
		models[mc.Name], byName[mc.Name] = m, m
		d.Log.Info("model loaded", slog.String("model", mc.Name), slog.Int("versions", len(m.Versions())),
			slog.Any("labels", m.Metadata().Labels), slog.String("fingerprint", short(m.Metadata().Fingerprint)),
			slog.Float64("temperature", m.Scoring().Temperature))
	}
	for _, mc := range cfg.Models {
		if !mc.IsEnsemble() {
			continue
		}
		e, err := b.ensemble(mc, models)
		if err != nil {
			return fail(err)
		}
		servables = append(servables, e)
		byName[mc.Name] = e
		d.Log.Info("ensemble loaded", slog.String("model", mc.Name), slog.Int("members", len(mc.Members)),
			slog.String("combine", mc.Combine), slog.Float64("temperature", e.Scoring().Temperature))
	}
	cascades, err := b.cascades(cfg, byName)
	if err != nil {
		return fail(err)
	}
	servables = append(servables, cascades...)
	reg, err := gateway.NewRegistry(servables)
	if err != nil {
		return fail(err)
	}
	return reg, nil
}

// model builds a model with replicas: a pool per version.
func (b *builder) model(ctx context.Context, mc config.Model) (*gateway.Model, error) {
	versions := mc.Versions
	if len(versions) == 0 {
		versions = []config.Version{{Name: mc.Version, Replicas: mc.Replicas}}
	}
	var vs []*gateway.Version
	for _, vc := range versions {
		p, err := b.pool(ctx, mc, vc)
		if err != nil {
			return nil, err
		}
		vs = append(vs, &gateway.Version{Name: vc.Name, Traffic: vc.Traffic, Pool: p})
	}
	cal, err := b.calibration(mc)
	if err != nil {
		return nil, err
	}
	windows, err := b.windowsMetric(mc)
	if err != nil {
		return nil, err
	}
	m, err := gateway.NewModel(gateway.ModelOptions{Name: mc.Name, Labels: mc.Labels, Versions: vs,
		DefaultVersion: mc.DefaultVersion, Scoring: scoring(mc), Calibration: cal,
		Cache: gateway.CachePolicy{Off: !*mc.Cache.Enabled, TTL: time.Duration(mc.Cache.TTL)}, Windows: windows})
	if err != nil {
		for _, v := range vs {
			_ = v.Pool.Close()
		}
		b.open = nil
		return nil, modelError(mc, err)
	}
	b.open = nil // the model owns its replicas now
	return m, nil
}

func (b *builder) ensemble(mc config.Model, models map[string]*gateway.Model) (*gateway.Ensemble, error) {
	var members []gateway.EnsembleMember
	for _, mem := range mc.Members {
		members = append(members, gateway.EnsembleMember{Model: models[mem.Name], Weight: mem.Weight, LabelMap: mem.LabelMap})
	}
	cal, err := b.calibration(mc)
	if err != nil {
		return nil, err
	}
	e, err := gateway.NewEnsemble(gateway.EnsembleOptions{Name: mc.Name, Labels: mc.Labels, Members: members,
		Combine: ensemble.Combine(mc.Combine), MinMembers: mc.MinMembers, Scoring: scoring(mc), Calibration: cal})
	if err != nil {
		return nil, modelError(mc, err)
	}
	return e, nil
}

// calibration reads a model's calibration file, if it names one; the
// model's constructor checks that it fits.
func (b *builder) calibration(mc config.Model) (gateway.Calibration, error) {
	c := gateway.Calibration{AllowMismatch: b.AllowCalibrationMismatch}
	if mc.Calibration == "" {
		return c, nil
	}
	raw, err := os.ReadFile(mc.Calibration)
	if err != nil {
		return c, fmt.Errorf("models[%s].calibration: %w", mc.Name, err)
	}
	c.File = &calibration.File{}
	if err := json.Unmarshal(raw, c.File); err != nil {
		return c, fmt.Errorf("models[%s].calibration: %s: %w", mc.Name, mc.Calibration, err)
	}
	return c, nil
}

// scoring is a model's default output and temperature, after KServe's
// Hugging Face server flags.
func scoring(m config.Model) gateway.Scoring {
	s := gateway.Scoring{Mode: gateway.ModeLabel, Temperature: m.Temperature,
		Activation: calibration.Activation(m.Activation), Threshold: m.Threshold}
	switch {
	case m.ReturnProbabilities:
		s.Mode = gateway.ModeProbabilities
	case m.DisablePostprocess:
		s.Mode = gateway.ModeRawLogits
	}
	return s
}

// modelError names the registry field a constructor's error is about.
func modelError(mc config.Model, err error) error {
	if errors.Is(err, gateway.ErrCalibrationMismatch) {
		return fmt.Errorf("models[%s].calibration: %s: %w", mc.Name, mc.Calibration, err)
	}
	return fmt.Errorf("models[%s]: %w", mc.Name, err)
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
