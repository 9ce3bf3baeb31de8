package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

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

// Model is a named model served by one or more replicas.
type Model struct {
	Name     string
	Version  string // "" when the model is unversioned
	Mode     Mode
	replicas []protocol.Predictor
	meta     protocol.ModelMetadata
	next     atomic.Uint64
}

// NewModel checks that every replica serves the same labels.
func NewModel(name, version string, mode Mode, replicas []protocol.Predictor) (*Model, error) {
	if len(replicas) == 0 {
		return nil, fmt.Errorf("model %s: no replicas", name)
	}
	meta := replicas[0].Metadata()
	for i, r := range replicas[1:] {
		if got := r.Metadata().Labels; fmt.Sprint(got) != fmt.Sprint(meta.Labels) {
			return nil, fmt.Errorf("model %s: replica %d has labels %v, replica 0 has %v", name, i+1, got, meta.Labels)
		}
	}
	return &Model{Name: name, Version: version, Mode: mode, replicas: replicas, meta: meta}, nil
}

// Metadata is the metadata of the model's first replica.
func (m *Model) Metadata() protocol.ModelMetadata { return m.meta }

// Predict scores texts on the next replica, round robin, and checks that
// the backend kept the contract's shape.
func (m *Model) Predict(ctx context.Context, texts []string) (protocol.Logits, error) {
	r := m.replicas[m.next.Add(1)%uint64(len(m.replicas))]
	logits, err := r.Predict(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Name, err)
	}
	if err := protocol.CheckShape(logits, len(texts), len(m.meta.Labels)); err != nil {
		return nil, fmt.Errorf("model %s: backend broke the contract: %w", m.Name, err)
	}
	return logits, nil
}

// Close closes every replica.
func (m *Model) Close() error {
	var errs []error
	for _, r := range m.replicas {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// Registry maps names to models. It is immutable once built, so a reload can
// swap a whole new one in atomically.
type Registry struct {
	byName map[string]*Model
	names  []string
}

// NewRegistry indexes models by name.
func NewRegistry(models []*Model) (*Registry, error) {
	r := &Registry{byName: map[string]*Model{}}
	for _, m := range models {
		if _, dup := r.byName[m.Name]; dup {
			return nil, fmt.Errorf("duplicate model name %q", m.Name)
		}
		r.byName[m.Name] = m
		r.names = append(r.names, m.Name)
	}
	return r, nil
}

// Get finds a model; version "" means the default.
func (r *Registry) Get(name, version string) (*Model, error) {
	m, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", protocol.ErrModelNotFound, name)
	}
	if version != "" && version != m.Version {
		return nil, fmt.Errorf("%w: %q has no version %q", protocol.ErrModelNotFound, name, version)
	}
	return m, nil
}

// Names lists the models in registry order.
func (r *Registry) Names() []string { return r.names }

// Close closes every model.
func (r *Registry) Close() error {
	var errs []error
	for _, name := range r.names {
		errs = append(errs, r.byName[name].Close())
	}
	return errors.Join(errs...)
}
