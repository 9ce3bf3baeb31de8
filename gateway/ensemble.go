package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/chorusml/chorus/ensemble"
	"github.com/chorusml/chorus/protocol"
)

// EnsembleMember declares one member of an ensemble.
type EnsembleMember struct {
	Model  *Model
	Weight float64
	// LabelMap renames the member's labels (member name → ensemble name).
	LabelMap map[string]string
}

// EnsembleOptions describe an ensemble completely; NewEnsemble checks them.
type EnsembleOptions struct {
	Name string
	// Labels of the ensemble (nil: the first member's).
	Labels  []string
	Members []EnsembleMember
	Combine ensemble.Combine
	// MinMembers must answer (0: all).
	MinMembers  int
	Scoring     Scoring
	Calibration Calibration
}

// Ensemble combines the logits of models of the registry. It owns nothing:
// its members are served (and started and closed) as models of their own.
type Ensemble struct {
	name    string
	scoring Scoring
	meta    protocol.ModelMetadata
	ens     *ensemble.Ensemble
	members []*Model
}

var _ Servable = (*Ensemble)(nil)

// ensembleVersion is the one version an ensemble routes to: its members
// route on their own.
var ensembleVersion = &Version{}

// NewEnsemble checks that every member serves the ensemble's labels (or
// the first member's), reordered by its label map; a mismatch names both.
func NewEnsemble(o EnsembleOptions) (*Ensemble, error) {
	if len(o.Members) == 0 {
		return nil, fmt.Errorf("ensemble %s: no members", o.Name)
	}
	labels, ref := o.Labels, o.Members[0].Model.Name()
	if labels == nil {
		labels = o.Members[0].Model.meta.Labels
	} else {
		ref = "the registry's labels"
	}
	e := &Ensemble{name: o.Name, ens: &ensemble.Ensemble{Combine: o.Combine, MinMembers: o.MinMembers}}
	h := sha256.New()
	fmt.Fprintf(h, "ensemble\ncombine=%s\n", o.Combine)
	for _, mem := range o.Members {
		perm, err := ensemble.Permutation(mem.Model.meta.Labels, labels, mem.LabelMap)
		if err != nil {
			return nil, fmt.Errorf("ensemble %s: member %s vs %s: %w", o.Name, mem.Model.Name(), ref, err)
		}
		e.ens.Members = append(e.ens.Members, ensemble.Member{Name: mem.Model.Name(), Weight: mem.Weight, Perm: perm})
		e.members = append(e.members, mem.Model)
		fmt.Fprintf(h, "member=%s fp=%s weight=%v perm=%v\n", mem.Model.Name(), mem.Model.meta.Fingerprint, mem.Weight, perm)
	}
	// mean_probs averages the members' scores: they must be one kind.
	act := o.Members[0].Model.scoring.Activation
	for _, mem := range o.Members[1:] {
		if a := mem.Model.scoring.Activation; a != act && o.Combine == ensemble.MeanProbs {
			return nil, fmt.Errorf("ensemble %s: mean_probs over member %s scored with %s and member %s with %s", o.Name, o.Members[0].Model.Name(), act, mem.Model.Name(), a)
		}
	}
	e.ens.Activation = act
	e.meta = protocol.ModelMetadata{Labels: labels, Fingerprint: hex.EncodeToString(h.Sum(nil)), Platform: "chorus_ensemble", Activation: string(act)}
	var err error
	if e.scoring, err = o.Calibration.apply(o.Scoring, e.meta); err != nil {
		return nil, fmt.Errorf("ensemble %s: %w", o.Name, err)
	}
	e.meta.Activation = string(e.scoring.Activation)
	return e, nil
}

// Name is the name the ensemble is served under.
func (e *Ensemble) Name() string { return e.name }

// Metadata is the ensemble's labels and fingerprint (of its combination).
func (e *Ensemble) Metadata() protocol.ModelMetadata { return e.meta }

// Scoring is how the combined logits become answers.
func (e *Ensemble) Scoring() Scoring { return e.scoring }

// VersionNames is empty: an ensemble has no versions.
func (e *Ensemble) VersionNames() []string { return nil }

// Route accepts no version name.
func (e *Ensemble) Route(version string) (*Version, error) {
	if version != "" {
		return nil, fmt.Errorf("%w: ensemble %q has no versions", protocol.ErrModelNotFound, e.name)
	}
	return ensembleVersion, nil
}

// Ready reports whether enough members are ready.
func (e *Ensemble) Ready(*Version) bool {
	ready := 0
	for _, mem := range e.members {
		if mem.Ready(nil) {
			ready++
		}
	}
	need := e.ens.MinMembers
	if need <= 0 {
		need = len(e.members)
	}
	return ready >= need
}

// Start does nothing: members are started as models of their own.
func (e *Ensemble) Start(context.Context) {}

// Close does nothing: the ensemble owns nothing.
func (e *Ensemble) Close() error { return nil }

// predict fans out to the members, each through its own pool and cache
// (so changing an ensemble's weights or temperature needs no flush), and
// combines what answered.
func (e *Ensemble) predict(ctx context.Context, s *Scorer, _ *Version, texts []string, useCache bool) (prediction, error) {
	return e.fanOut(ctx, s, len(texts), func(ctx context.Context, mem *Model, mv *Version) (protocol.Logits, cacheResult, error) {
		return s.cached(ctx, mem, mv, texts, useCache)
	})
}

// fanOut asks every member for n rows with score and combines what
// answered.
func (e *Ensemble) fanOut(ctx context.Context, s *Scorer, n int, score func(context.Context, *Model, *Version) (protocol.Logits, cacheResult, error)) (prediction, error) {
	var mu sync.Mutex
	total := cacheResult{}
	res, err := e.ens.Run(ctx, func(ctx context.Context, i int) (l protocol.Logits, err error) {
		mem := e.members[i]
		ctx, span := s.tracer.Start(ctx, "chorus.ensemble.member", trace.WithAttributes(attribute.String("chorus.model", mem.Name())))
		defer func() { endSpan(span, err) }()
		mv, err := mem.Route("")
		if err != nil {
			return nil, err
		}
		l, cr, err := score(ctx, mem, mv)
		mu.Lock()
		total.used = total.used || cr.used
		total.hits += cr.hits
		total.n += n
		// Members see the same inputs: an input any member cut was cut.
		for _, i := range cr.truncated {
			if !slices.Contains(total.truncated, i) {
				total.truncated = append(total.truncated, i)
			}
		}
		mu.Unlock()
		return l, err
	})
	if err != nil {
		return prediction{}, fmt.Errorf("ensemble %s: %w", e.name, err)
	}
	slices.Sort(total.truncated)
	p := prediction{logits: res.Logits, cache: total, failed: res.Failed, ensemble: true}
	for _, u := range res.Used {
		p.members = append(p.members, memberResult{Name: u.Name, Weight: u.Weight, Logits: u.Logits})
	}
	return p, nil
}
