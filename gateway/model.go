package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/chorusml/chorus/ensemble"
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

// Model is a named model: one or more versions, each a pool of replicas.
type Model struct {
	Name string
	Mode Mode
	// CacheEnabled lets the logits cache serve this model (default true via
	// NewModel); CacheTTL overrides the server's TTL when non-zero.
	CacheEnabled bool
	CacheTTL     time.Duration
	// Temperature divides logits before every softmax (1: none). For an
	// ensemble it applies after combining.
	Temperature float64
	meta        protocol.ModelMetadata
	versions    []*Version
	// def takes unversioned requests when no version sets traffic.
	def  *Version
	rand func(n int) int
	// ens and members are set for an ensemble, which has no versions.
	ens     *ensemble.Ensemble
	members []*Model
}

// ensembleVersion is the only "version" of an ensemble: it has no pool.
var ensembleVersion = &Version{}

// EnsembleMember declares one member of an ensemble.
type EnsembleMember struct {
	Model  *Model
	Weight float64
	// LabelMap renames the member's labels (member name → ensemble name).
	LabelMap map[string]string
}

// NewEnsemble builds a model that combines members. Every member must serve
// the ensemble's labels (labels, or else the first member's), reordered by
// its label map; a mismatch names both members.
func NewEnsemble(name string, mode Mode, labels []string, members []EnsembleMember, combine ensemble.Combine, minMembers int) (*Model, error) {
	if len(members) == 0 {
		return nil, fmt.Errorf("ensemble %s: no members", name)
	}
	ref := members[0].Model.Name
	if labels == nil {
		labels = members[0].Model.meta.Labels
	} else {
		ref = "the registry's labels"
	}
	e := &ensemble.Ensemble{Combine: combine, MinMembers: minMembers}
	m := &Model{Name: name, Mode: mode, ens: e, CacheEnabled: true, Temperature: 1, rand: rand.IntN}
	h := sha256.New()
	fmt.Fprintf(h, "ensemble\ncombine=%s\n", combine)
	for _, mem := range members {
		perm, err := ensemble.Permutation(mem.Model.meta.Labels, labels, mem.LabelMap)
		if err != nil {
			return nil, fmt.Errorf("ensemble %s: member %s vs %s: %w", name, mem.Model.Name, ref, err)
		}
		e.Members = append(e.Members, ensemble.Member{Name: mem.Model.Name, Weight: mem.Weight, Perm: perm})
		m.members = append(m.members, mem.Model)
		fmt.Fprintf(h, "member=%s fp=%s weight=%v perm=%v\n", mem.Model.Name, mem.Model.meta.Fingerprint, mem.Weight, perm)
	}
	m.meta = protocol.ModelMetadata{Labels: labels, Fingerprint: hex.EncodeToString(h.Sum(nil)), Platform: "chorus_ensemble"}
	return m, nil
}

// IsEnsemble reports whether the model combines other models.
func (m *Model) IsEnsemble() bool { return m.ens != nil }

// NewModel checks that every replica of every version serves labels (or,
// when labels is nil, the labels of the first replica) and that defaultVersion
// names a version ("" means the first).
func NewModel(name string, mode Mode, labels []string, versions []*Version, defaultVersion string) (*Model, error) {
	if len(versions) == 0 {
		return nil, fmt.Errorf("model %s: no versions", name)
	}
	m := &Model{Name: name, Mode: mode, versions: versions, def: versions[0], rand: rand.IntN, CacheEnabled: true, Temperature: 1}
	first := ""
	for _, v := range versions {
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
				return nil, fmt.Errorf("model %s: replica %s serves labels %v, %s are %v", name, r.Name, meta.Labels, src, labels)
			}
			if m.meta.Fingerprint == "" {
				m.meta = meta
			}
		}
		if v.Name == defaultVersion {
			m.def = v
		}
	}
	m.meta.Labels = labels
	if defaultVersion != "" && m.def.Name != defaultVersion {
		return nil, fmt.Errorf("model %s: default version %q is not one of its versions", name, defaultVersion)
	}
	return m, nil
}

// Metadata is the model's labels and its first replica's metadata.
func (m *Model) Metadata() protocol.ModelMetadata { return m.meta }

// Versions lists the model's versions.
func (m *Model) Versions() []*Version { return m.versions }

// Route picks the version for a request: the one named, else by traffic
// split, else the default.
func (m *Model) Route(version string) (*Version, error) {
	if m.ens != nil {
		if version != "" {
			return nil, fmt.Errorf("%w: ensemble %q has no versions", protocol.ErrModelNotFound, m.Name)
		}
		return ensembleVersion, nil
	}
	if version != "" {
		for _, v := range m.versions {
			if v.Name == version {
				return v, nil
			}
		}
		return nil, fmt.Errorf("%w: %q has no version %q", protocol.ErrModelNotFound, m.Name, version)
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

// Predict scores texts on version v and checks that the backend kept the
// contract's shape.
func (m *Model) Predict(ctx context.Context, v *Version, texts []string) (protocol.Logits, error) {
	logits, err := v.Pool.Predict(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Name, err)
	}
	if err := protocol.CheckShape(logits, len(texts), len(m.meta.Labels)); err != nil {
		return nil, fmt.Errorf("model %s: %w: backend broke the contract: %v", m.Name, protocol.ErrBadGateway, err)
	}
	return logits, nil
}

// Ready reports whether version v (nil: any version) can serve; an
// ensemble is ready while enough members are.
func (m *Model) Ready(v *Version) bool {
	if m.ens != nil {
		ready := 0
		for _, mem := range m.members {
			if mem.Ready(nil) {
				ready++
			}
		}
		need := m.ens.MinMembers
		if need <= 0 {
			need = len(m.members)
		}
		return ready >= need
	}
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

// Start begins every pool's health checks (an ensemble's members are
// models of their own and started as such).
func (m *Model) Start(ctx context.Context) {
	for _, v := range m.versions {
		v.Pool.Start(ctx)
	}
}

// Close closes every version's pool; an ensemble owns nothing.
func (m *Model) Close() error {
	var errs []error
	for _, v := range m.versions {
		errs = append(errs, v.Pool.Close())
	}
	return errors.Join(errs...)
}

// Registry maps names to models. It is immutable once built, so a reload can
// swap a whole new one in atomically; requests hold the registry they
// started on (acquire/release) so it is closed only after they finish.
type Registry struct {
	byName map[string]*Model
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

// Get finds a model by name.
func (r *Registry) Get(name string) (*Model, error) {
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
