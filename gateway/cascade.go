package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/ensemble"
	"github.com/chorusml/chorus/protocol"
)

// OutputStage (V2, cascades) names, per text, the stage that answered.
const OutputStage = "stage"

// CascadeStage is one stage of a cascade: a model or an ensemble of the
// registry, and the confidence at which its answer is final.
type CascadeStage struct {
	Servable Servable
	// MinConfidence is the calibrated top-label probability at or above
	// which the stage's answer is final (0..1]. The last stage's is unused:
	// it answers whatever reaches it.
	MinConfidence float64
	// LabelMap renames the stage's labels (stage name → cascade name).
	LabelMap map[string]string
}

// CascadeOptions describe a cascade completely; NewCascade checks them.
type CascadeOptions struct {
	Name string
	// Labels of the cascade (nil: the first stage's).
	Labels []string
	Stages []CascadeStage
	// SkipFailed sends a failing stage's texts on to the next stage instead
	// of failing the request (the last stage's failure always fails it).
	SkipFailed bool
	// Mode is the default output. A cascade has no temperature of its own:
	// it answers in each stage's calibration.
	Mode Mode
	// Threshold is the score at or above which a label is in the labels
	// output (0: DefaultThreshold).
	Threshold float64
	// Answers counts answers per stage (nil: not counted); see
	// Metrics.CascadeAnswers.
	Answers *prometheus.CounterVec
}

// Cascade answers each text with the first stage sure enough of it: a
// cheap model in front of an expensive one, where "sure" is the stage's
// calibrated probability. Like an ensemble it owns nothing; its stages are
// served (and started and closed) on their own.
type Cascade struct {
	name       string
	meta       protocol.ModelMetadata
	scoring    Scoring
	stages     []cascadeStage
	skipFailed bool
	answers    *prometheus.CounterVec
}

type cascadeStage struct {
	s    Servable
	min  float64
	perm []int // nil: the stage's labels are the cascade's
}

var _ Servable = (*Cascade)(nil)

// NewCascade checks that every stage serves the cascade's labels (or the
// first stage's), reordered by its label map, and that every stage but the
// last has a threshold in (0, 1].
func NewCascade(o CascadeOptions) (*Cascade, error) {
	if len(o.Stages) < 2 {
		return nil, fmt.Errorf("cascade %s: want at least two stages", o.Name)
	}
	labels, ref := o.Labels, o.Stages[0].Servable.Name()
	if labels == nil {
		labels = o.Stages[0].Servable.Metadata().Labels
	} else {
		ref = "the registry's labels"
	}
	act := o.Stages[0].Servable.Scoring().Activation
	if act == calibration.ActivationNone {
		return nil, fmt.Errorf("cascade %s: stage %s has activation none: its scores are no probabilities to be sure by", o.Name, o.Stages[0].Servable.Name())
	}
	c := &Cascade{name: o.Name, skipFailed: o.SkipFailed, answers: o.Answers,
		scoring: Scoring{Mode: o.Mode, Temperature: 1, Activation: act, Threshold: cmp.Or(o.Threshold, DefaultThreshold)}}
	h := sha256.New()
	fmt.Fprintf(h, "cascade\nskip_failed=%v\n", o.SkipFailed)
	for i, st := range o.Stages {
		last := i == len(o.Stages)-1
		if !last && !(st.MinConfidence > 0 && st.MinConfidence <= 1) {
			return nil, fmt.Errorf("cascade %s: stage %s: min_confidence %v: want (0, 1]", o.Name, st.Servable.Name(), st.MinConfidence)
		}
		if a := st.Servable.Scoring().Activation; a != act {
			return nil, fmt.Errorf("cascade %s: stage %s scores with %s, stage %s with %s: stages must share an activation", o.Name, st.Servable.Name(), a, o.Stages[0].Servable.Name(), act)
		}
		perm, err := ensemble.Permutation(st.Servable.Metadata().Labels, labels, st.LabelMap)
		if err != nil {
			return nil, fmt.Errorf("cascade %s: stage %s vs %s: %w", o.Name, st.Servable.Name(), ref, err)
		}
		c.stages = append(c.stages, cascadeStage{s: st.Servable, min: st.MinConfidence, perm: perm})
		// The answers depend on each stage's calibration too.
		sc := st.Servable.Scoring()
		cal := ""
		if sc.Calibrator != nil {
			cal = fmt.Sprint(sc.Calibrator)
		}
		fmt.Fprintf(h, "stage=%s fp=%s min=%v perm=%v t=%v cal=%s\n", st.Servable.Name(), st.Servable.Metadata().Fingerprint, st.MinConfidence, perm, sc.Temperature, cal)
	}
	c.meta = protocol.ModelMetadata{Labels: labels, Fingerprint: hex.EncodeToString(h.Sum(nil)), Platform: "chorus_cascade", Activation: string(act)}
	return c, nil
}

// Name is the name the cascade is served under.
func (c *Cascade) Name() string { return c.name }

// Metadata is the cascade's labels and fingerprint (of its stages).
func (c *Cascade) Metadata() protocol.ModelMetadata { return c.meta }

// Scoring is the default output; the temperature is 1 because a cascade's
// logits are already its stages' calibrated logits.
func (c *Cascade) Scoring() Scoring { return c.scoring }

// VersionNames is empty: a cascade has no versions.
func (c *Cascade) VersionNames() []string { return nil }

// StageNames lists the stages in order.
func (c *Cascade) StageNames() []string {
	out := make([]string, len(c.stages))
	for i, st := range c.stages {
		out[i] = st.s.Name()
	}
	return out
}

// Route accepts no version name.
func (c *Cascade) Route(version string) (*Version, error) {
	if version != "" {
		return nil, fmt.Errorf("%w: cascade %q has no versions", protocol.ErrModelNotFound, c.name)
	}
	return ensembleVersion, nil
}

// Ready reports whether every stage is ready, or, when failing stages are
// skipped, whether the last one is (it can answer everything).
func (c *Cascade) Ready(*Version) bool {
	if c.skipFailed {
		return c.stages[len(c.stages)-1].s.Ready(nil)
	}
	for _, st := range c.stages {
		if !st.s.Ready(nil) {
			return false
		}
	}
	return true
}

// Start does nothing: stages are started as models of their own.
func (c *Cascade) Start(context.Context) {}

// Close does nothing: the cascade owns nothing.
func (c *Cascade) Close() error { return nil }

// cascadeResult is what a cascade adds to a prediction: which stage
// answered each text, and the stages that failed and were skipped.
type cascadeResult struct {
	stageNames []string // in stage order
	stageOf    []int    // per text: index into stageNames
	skipped    []string
}

// counts is how many texts each stage answered, in stage order.
func (r *cascadeResult) counts() []int {
	n := make([]int, len(r.stageNames))
	for _, s := range r.stageOf {
		n[s]++
	}
	return n
}

// perText is the answering stage's name for each text.
func (r *cascadeResult) perText() []string {
	out := make([]string, len(r.stageOf))
	for i, s := range r.stageOf {
		out[i] = r.stageNames[s]
	}
	return out
}

// predict sends every text to the first stage, keeps the answers whose
// calibrated top-label probability reaches the stage's threshold, and
// sends only the rest on. Each stage predicts through its own cache, so
// a text scored once by a stage is never scored by it again.
func (c *Cascade) predict(ctx context.Context, s *Scorer, _ *Version, texts []string, useCache bool) (prediction, error) {
	return c.run(ctx, s, len(texts), attribute.Key("chorus.texts"), func(ctx context.Context, st cascadeStage, v *Version, idx []int) (prediction, error) {
		return st.s.predict(ctx, s, v, pick(texts, idx), useCache)
	})
}

// run answers n inputs stage by stage: score scores the inputs at idx
// (those no earlier stage was sure of) with stage st on version v.
func (c *Cascade) run(ctx context.Context, s *Scorer, n int, what attribute.Key, score func(context.Context, cascadeStage, *Version, []int) (prediction, error)) (prediction, error) {
	out := make(protocol.Logits, n)
	res := &cascadeResult{stageNames: c.StageNames(), stageOf: make([]int, n)}
	total := cacheResult{}
	pending := make([]int, n) // indices of inputs not yet answered
	for i := range pending {
		pending[i] = i
	}
	for si, st := range c.stages {
		if len(pending) == 0 {
			break
		}
		last := si == len(c.stages)-1
		idx := pending
		p, err := c.stagePredict(ctx, s, st, what.Int(len(idx)), len(idx), func(ctx context.Context, v *Version) (prediction, error) {
			return score(ctx, st, v, idx)
		})
		total.used = total.used || p.cache.used
		total.hits += p.cache.hits
		total.n += p.cache.n // an ensemble counts an input per member
		if err != nil {
			// Only a stage's own failures are skipped: an input the
			// request made wrong (a 4xx) is wrong for every stage.
			if c.skipFailed && !last && ctx.Err() == nil && statusOf(err) >= http.StatusInternalServerError {
				res.skipped = append(res.skipped, st.s.Name())
				continue
			}
			return prediction{cache: total}, fmt.Errorf("cascade %s: stage %s: %w", c.name, st.s.Name(), err)
		}
		r := newRender(st.s, nil)
		var next []int
		for j, i := range idx {
			// The stage's own scores (its calibration, its activation)
			// decide; calibrating before reordering keeps a per-label
			// calibrator on its own labels.
			if !last && float64(slices.Max(r.probs(p.logits[j]))) < st.min {
				next = append(next, i)
				continue
			}
			out[i], res.stageOf[i] = ensemble.PermuteRow(r.calibrated(p.logits[j]), st.perm), si
			if slices.Contains(p.cache.truncated, j) { // the answer is of a cut input
				total.truncated = append(total.truncated, i)
			}
		}
		pending = next
	}
	slices.Sort(total.truncated)
	if c.answers != nil {
		for si, n := range res.counts() {
			if n > 0 {
				c.answers.WithLabelValues(c.name, res.stageNames[si]).Add(float64(n))
			}
		}
	}
	return prediction{logits: out, cache: total, cascade: res}, nil
}

// pick is the inputs at idx.
func pick[T any](inputs []T, idx []int) []T {
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = inputs[i]
	}
	return out
}

// stagePredict scores n inputs with one stage, in a span of its own.
func (c *Cascade) stagePredict(ctx context.Context, s *Scorer, st cascadeStage, inputs attribute.KeyValue, n int, score func(context.Context, *Version) (prediction, error)) (p prediction, err error) {
	ctx, span := s.tracer.Start(ctx, "chorus.cascade.stage", trace.WithAttributes(
		attribute.String("chorus.model", st.s.Name()), inputs))
	defer func() { endSpan(span, err) }()
	v, err := st.s.Route("")
	if err != nil {
		return prediction{}, err
	}
	p, err = score(ctx, v)
	if err == nil && len(p.logits) != n {
		err = fmt.Errorf("%w: %d rows for %d inputs", protocol.ErrBadGateway, len(p.logits), n)
	}
	return p, err
}

// isCascade reports whether m is a cascade.
func isCascade(m Servable) bool {
	_, ok := m.(*Cascade)
	return ok
}

// checkCascadeOutputs refuses the stage output for other models.
func checkCascadeOutputs(m Servable, outputs []string) error {
	if isCascade(m) {
		return nil
	}
	for _, o := range outputs {
		if o == OutputStage {
			return fmt.Errorf("%w: output %q: %q is not a cascade", protocol.ErrInvalidInput, OutputStage, m.Name())
		}
	}
	return nil
}

// cascadeV2Outputs fills the stage tensors of a cascade's V2 answer.
func cascadeV2Outputs(outs []protocol.OutputTensor, p prediction) {
	if p.cascade == nil {
		return
	}
	for i := range outs {
		if outs[i].Name == OutputStage {
			outs[i].Shape, outs[i].Datatype, outs[i].Data = []int{len(p.cascade.stageOf)}, protocol.DatatypeBYTES, p.cascade.perText()
		}
	}
}

// cascadeV2Parameters say how many texts each stage answered, as OIP
// scalars: "small=7,big=1" and a count per stage (stage_<name>).
func cascadeV2Parameters(out map[string]any, p prediction) {
	r := p.cascade
	parts := make([]string, len(r.stageNames))
	for i, n := range r.counts() {
		parts[i] = r.stageNames[i] + "=" + strconv.Itoa(n)
		out["stage_"+r.stageNames[i]] = n
	}
	out["stage_counts"] = strings.Join(parts, ",")
	if len(r.skipped) > 0 {
		out["stages_failed"] = strings.Join(r.skipped, ",")
	}
}

// cascadeV1Parameters: counts per stage and the stage of each text.
func cascadeV1Parameters(p prediction) map[string]any {
	r := p.cascade
	counts := map[string]int{}
	for i, n := range r.counts() {
		counts[r.stageNames[i]] = n
	}
	out := map[string]any{"stage_counts": counts, "stages": r.perText()}
	if len(r.skipped) > 0 {
		out["stages_failed"] = r.skipped
	}
	return out
}

// withCascadeOutputs adds the stage output to a cascade's V2 metadata.
func withCascadeOutputs(m Servable, out []protocol.TensorMetadata) []protocol.TensorMetadata {
	if isCascade(m) {
		out = append(out, protocol.TensorMetadata{Name: OutputStage, Datatype: protocol.DatatypeBYTES, Shape: []int64{-1}})
	}
	return out
}

// CascadeScores are every stage's calibrated logits for the same texts, in
// the cascade's label order, with each stage's threshold: what `chorus
// calibrate --cascade` sweeps the first stage's threshold over.
type CascadeScores struct {
	Labels []string
	Stages []string
	// Activation the stages share (softmax, sigmoid).
	Activation string
	// MinConfidence of each stage (the last one's is 0).
	MinConfidence []float64
	// Calibrated[s][i] is stage s's calibrated logits for text i.
	Calibrated []protocol.Logits
}

// CascadeScores scores texts with every stage of cascade name (without the
// cache: the split is scored once).
func (s *Scorer) CascadeScores(ctx context.Context, r *Registry, name string, texts []string) (CascadeScores, error) {
	m, _, err := resolve(r, name, "")
	if err != nil {
		return CascadeScores{}, err
	}
	c, ok := m.(*Cascade)
	if !ok {
		return CascadeScores{}, fmt.Errorf("%w: %q is not a cascade", protocol.ErrInvalidInput, name)
	}
	out := CascadeScores{Labels: c.meta.Labels, Stages: c.StageNames(), Activation: string(c.scoring.Activation)}
	for _, st := range c.stages {
		p, err := c.stagePredict(ctx, s, st, attribute.Int("chorus.texts", len(texts)), len(texts), func(ctx context.Context, v *Version) (prediction, error) {
			return st.s.predict(ctx, s, v, texts, false)
		})
		if err != nil {
			return CascadeScores{}, fmt.Errorf("cascade %s: stage %s: %w", c.name, st.s.Name(), err)
		}
		r := newRender(st.s, nil)
		cal := make(protocol.Logits, len(texts))
		for i, row := range p.logits {
			cal[i] = ensemble.PermuteRow(r.calibrated(row), st.perm)
		}
		out.Calibrated = append(out.Calibrated, cal)
		out.MinConfidence = append(out.MinConfidence, st.min)
	}
	return out, nil
}
