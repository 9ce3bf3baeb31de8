package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/gateway/pool"
	"github.com/chorusml/chorus/protocol"
)

// Mode is a model's default output, after KServe's Hugging Face server flags.
type Mode int

const (
	// ModeLabel: the argmax label index (KServe's default).
	ModeLabel Mode = iota
	// ModeProbabilities: KServe's --return_probabilities strings.
	ModeProbabilities
	// ModeRawLogits: KServe's --disable_postprocess strings.
	ModeRawLogits
)

// Scoring is how a servable's raw logits become answers.
type Scoring struct {
	// Mode is the default output.
	Mode Mode
	// Activation turns (calibrated) logits into scores: softmax, sigmoid
	// or none. Empty: the model's metadata Activation (transformers'
	// pipeline default), else softmax.
	Activation calibration.Activation
	// Threshold is the score at or above which a label is in the labels
	// output (0: 0.5).
	Threshold float64
	// Temperature divides logits before every activation (1: none; 0 is
	// read as 1). For an ensemble it applies after combining.
	Temperature float64
	// Calibrator, when set, replaces the temperature: a fitted method
	// other than one temperature (vector scaling), applied to the logits
	// before the softmax.
	Calibrator *calibration.Calibrator
}

// Calibration is a fitted calibration file for a servable: it replaces
// Scoring's temperature once checked against the servable's fingerprint and
// labels.
type Calibration struct {
	File *calibration.File
	// AllowMismatch uses the file even when it was fitted for another
	// fingerprint or labels (serve --allow-calibration-mismatch).
	AllowMismatch bool
}

// ErrCalibrationMismatch: a calibration file was fitted for another model.
var ErrCalibrationMismatch = errors.New("calibration file does not fit the model")

// apply checks the calibration against meta and returns the scoring to use.
func (c Calibration) apply(s Scoring, meta protocol.ModelMetadata) (Scoring, error) {
	s.Temperature = cmp.Or(s.Temperature, 1)
	s.Threshold = cmp.Or(s.Threshold, DefaultThreshold)
	s.Activation = cmp.Or(s.Activation, calibration.Activation(meta.Activation), calibration.ActivationSoftmax)
	switch s.Activation {
	case calibration.ActivationSoftmax, calibration.ActivationSigmoid, calibration.ActivationNone:
	default:
		return s, fmt.Errorf("activation %q: want softmax, sigmoid or none", s.Activation)
	}
	if c.File == nil {
		return s, nil
	}
	cal := c.File.Calibrator
	if err := cal.Validate(len(meta.Labels)); err != nil {
		return s, fmt.Errorf("%w: %w", ErrCalibrationMismatch, err)
	}
	if cal.Act() != s.Activation {
		return s, fmt.Errorf("%w: method %s calibrates %s scores; this model is served with %s", ErrCalibrationMismatch, cal.Kind(), cal.Act(), s.Activation)
	}
	if err := c.File.CheckFor(meta.Fingerprint, meta.Labels); err != nil && !c.AllowMismatch {
		return s, fmt.Errorf("%w: %w", ErrCalibrationMismatch, err)
	}
	if cal.Kind() == calibration.MethodTemperature {
		// The temperature divides inside the float64 activation, as it
		// always has: the same bits as a registry temperature.
		s.Temperature = cal.Temperature
		return s, nil
	}
	s.Temperature, s.Calibrator = 1, &cal
	return s, nil
}

// DefaultThreshold is the score at or above which a label is in the
// labels output when the model sets none (transformers' multi-label
// convention).
const DefaultThreshold = 0.5

// Version is one version of a model, served by a pool of replicas.
type Version struct {
	// Name is "" for an unversioned model (model_version null).
	Name string
	// Traffic is its percentage of unversioned requests (0: see Model).
	Traffic int
	Pool    *pool.Pool
}

// Fingerprint identifies what this version computes (its first replica's
// fingerprint; replicas of one version serve the same model). Cache keys
// include it.
func (v *Version) Fingerprint() string {
	return v.Pool.Replicas()[0].Backend().Metadata().Fingerprint
}

// CachePolicy is a model's use of the logits cache.
type CachePolicy struct {
	// Off keeps the cache from serving the model.
	Off bool
	// TTL overrides the server's TTL when non-zero.
	TTL time.Duration
}

// ModelOptions describe a model completely; NewModel checks them.
type ModelOptions struct {
	Name string
	// Labels the replicas must serve (nil: the first replica's).
	Labels []string
	// Versions serve the model; DefaultVersion ("": the first) takes
	// unversioned requests when no version sets traffic.
	Versions       []*Version
	DefaultVersion string
	Scoring        Scoring
	Calibration    Calibration
	Cache          CachePolicy
	// Windows, set when the replicas classify long texts in windows, makes
	// every answer say how many windows each text used.
	Windows *WindowsReport
}

// Model is a named model: one or more versions, each a pool of replicas.
type Model struct {
	name     string
	scoring  Scoring
	cache    CachePolicy
	meta     protocol.ModelMetadata
	versions []*Version
	// def takes unversioned requests when no version sets traffic.
	def     *Version
	rand    func(n int) int
	windows *WindowsReport // nil: texts are truncated
}

var _ Servable = (*Model)(nil)

// NewModel checks that every replica of every version serves the labels
// (or, when none are given, the labels of the first replica), that the
// default version exists and that a calibration file fits the model.
func NewModel(o ModelOptions) (*Model, error) {
	if len(o.Versions) == 0 {
		return nil, fmt.Errorf("model %s: no versions", o.Name)
	}
	m := &Model{name: o.Name, cache: o.Cache, versions: o.Versions, def: o.Versions[0], rand: rand.IntN}
	labels, first := o.Labels, ""
	for _, v := range o.Versions {
		for _, r := range v.Pool.Replicas() {
			meta := r.Backend().Metadata()
			if labels == nil {
				labels, first = meta.Labels, r.Name
				m.meta = meta
			}
			if !slices.Equal(meta.Labels, labels) {
				src := "the registry's labels"
				if first != "" {
					src = "replica " + first
				}
				return nil, fmt.Errorf("model %s: replica %s serves labels %v, %s are %v", o.Name, r.Name, meta.Labels, src, labels)
			}
			if m.meta.Fingerprint == "" {
				m.meta = meta
			}
		}
		if v.Name == o.DefaultVersion {
			m.def = v
		}
	}
	m.meta.Labels = labels
	if m.windows = o.Windows; m.windows != nil {
		if err := m.checkWindows(); err != nil {
			return nil, err
		}
	}
	if o.DefaultVersion != "" && m.def.Name != o.DefaultVersion {
		return nil, fmt.Errorf("model %s: default version %q is not one of its versions", o.Name, o.DefaultVersion)
	}
	var err error
	if m.scoring, err = o.Calibration.apply(o.Scoring, m.meta); err != nil {
		return nil, fmt.Errorf("model %s: %w", o.Name, err)
	}
	// Metadata reports what the model is served with, not only what its
	// config.json suggests.
	m.meta.Activation = string(m.scoring.Activation)
	return m, nil
}

// Name is the name the model is served under.
func (m *Model) Name() string { return m.name }

// Metadata is the model's labels and its first replica's metadata.
func (m *Model) Metadata() protocol.ModelMetadata { return m.meta }

// Scoring is how the model's logits become answers.
func (m *Model) Scoring() Scoring { return m.scoring }

// Versions lists the model's versions.
func (m *Model) Versions() []*Version { return m.versions }

// VersionNames lists the named versions.
func (m *Model) VersionNames() []string {
	var out []string
	for _, v := range m.versions {
		if v.Name != "" {
			out = append(out, v.Name)
		}
	}
	return out
}

// Route picks the version for a request: the one named, else by traffic
// split, else the default.
func (m *Model) Route(version string) (*Version, error) {
	if version != "" {
		for _, v := range m.versions {
			if v.Name == version {
				return v, nil
			}
		}
		return nil, fmt.Errorf("%w: %q has no version %q", protocol.ErrModelNotFound, m.name, version)
	}
	if m.totalTraffic() == 0 {
		return m.def, nil
	}
	n := m.rand(100)
	for _, v := range m.versions {
		if n < v.Traffic {
			return v, nil
		}
		n -= v.Traffic
	}
	return m.def, nil
}

func (m *Model) totalTraffic() int {
	t := 0
	for _, v := range m.versions {
		t += v.Traffic
	}
	return t
}

// Predict scores texts on version v, bypassing any cache, and checks that
// the backend kept the contract's shape.
func (m *Model) Predict(ctx context.Context, v *Version, texts []string) (protocol.Logits, error) {
	logits, err := v.Pool.Predict(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.name, err)
	}
	if err := protocol.CheckShape(logits, len(texts), len(m.meta.Labels)); err != nil {
		return nil, fmt.Errorf("model %s: %w: backend broke the contract: %w", m.name, protocol.ErrBadGateway, err)
	}
	return logits, nil
}

// predict goes through the scorer's cache.
func (m *Model) predict(ctx context.Context, s *Scorer, v *Version, texts []string, useCache bool) (prediction, error) {
	var counted *protocol.WindowCounts // what the backend tokenized, it counts
	if m.windows != nil {
		counted = &protocol.WindowCounts{}
		ctx = protocol.WithWindowCounts(ctx, counted)
	}
	l, cr, err := s.cached(ctx, m, v, texts, useCache)
	if err != nil {
		return prediction{cache: cr}, err
	}
	w, err := m.windowsOf(v, texts, counted)
	return prediction{logits: l, cache: cr, windows: w}, err
}

// Ready reports whether version v (nil: any version) can serve.
func (m *Model) Ready(v *Version) bool {
	if v != nil {
		return v.Pool.Ready()
	}
	for _, v := range m.versions {
		if v.Pool.Ready() {
			return true
		}
	}
	return false
}

// Start begins every pool's health checks.
func (m *Model) Start(ctx context.Context) {
	for _, v := range m.versions {
		v.Pool.Start(ctx)
	}
}

// Close closes every version's pool.
func (m *Model) Close() error {
	var errs []error
	for _, v := range m.versions {
		errs = append(errs, v.Pool.Close())
	}
	return errors.Join(errs...)
}
