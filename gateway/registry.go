package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/chorusml/chorus/protocol"
)

// Servable is what the handlers serve under a name: a model whose versions
// are pools of replicas (Model), or an ensemble of such models (Ensemble).
type Servable interface {
	Name() string
	// Metadata is the labels, fingerprint and platform.
	Metadata() protocol.ModelMetadata
	// Scoring is how the servable's raw logits become answers.
	Scoring() Scoring
	// Route picks the version for a request ("": by traffic or default).
	// An ensemble has one unnamed version.
	Route(version string) (*Version, error)
	// VersionNames lists the named versions (none for an ensemble).
	VersionNames() []string
	// Ready reports whether version v (nil: any) can serve.
	Ready(v *Version) bool
	// Start begins background health checks; Close releases what it owns.
	Start(ctx context.Context)
	Close() error
	// predict scores texts on version v, through the scorer's cache.
	predict(ctx context.Context, s *Scorer, v *Version, texts []string, useCache bool) (prediction, error)
}

// Registry maps names to models. It is immutable once built, so a reload can
// swap a whole new one in atomically; requests hold the registry they
// started on (acquire/release) so it is closed only after they finish.
type Registry struct {
	byName map[string]Servable
	names  []string
	// gate is held shared by every request using the registry, and
	// exclusively by Retire while it marks the registry retired.
	gate    sync.RWMutex
	retired bool
}

// acquire pins the registry for one request; false once it is retired.
func (r *Registry) acquire() bool {
	r.gate.RLock()
	if r.retired {
		r.gate.RUnlock()
		return false
	}
	return true
}

func (r *Registry) release() { r.gate.RUnlock() }

// Retire waits for the requests still using the registry, then closes it.
// Requests that arrive meanwhile find it retired and use the new one.
func (r *Registry) Retire() error {
	r.gate.Lock()
	r.retired = true
	r.gate.Unlock()
	return r.Close()
}

// NewRegistry indexes models by name.
func NewRegistry(models []Servable) (*Registry, error) {
	r := &Registry{byName: map[string]Servable{}}
	for _, m := range models {
		if _, dup := r.byName[m.Name()]; dup {
			return nil, fmt.Errorf("duplicate model name %q", m.Name())
		}
		r.byName[m.Name()] = m
		r.names = append(r.names, m.Name())
	}
	return r, nil
}

// Get finds a model by name.
func (r *Registry) Get(name string) (Servable, error) {
	m, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", protocol.ErrModelNotFound, name)
	}
	return m, nil
}

// Names lists the models in registry order.
func (r *Registry) Names() []string { return r.names }

// Start begins every model's health checks.
func (r *Registry) Start(ctx context.Context) {
	for _, name := range r.names {
		r.byName[name].Start(ctx)
	}
}

// Close closes every model.
func (r *Registry) Close() error {
	var errs []error
	for _, name := range r.names {
		errs = append(errs, r.byName[name].Close())
	}
	return errors.Join(errs...)
}
