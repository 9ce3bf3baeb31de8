package ensemble

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/protocol"
)

// Combine is how member logits become the ensemble's.
type Combine string

// Combination methods.
const (
	// MeanLogits averages logits with the members' weights (the default).
	MeanLogits Combine = "mean_logits"
	// MeanProbs averages the members' scores (softmax, or the sigmoid of
	// multi-label members); the ensemble's logits map back to that average.
	MeanProbs Combine = "mean_probs"
	// MajorityVote weighs each member's label; the ensemble's logits are the
	// logs of the vote shares (a share of 0 is floored at 1e-9 to stay finite).
	MajorityVote Combine = "majority_vote"
)

// Combines lists the methods; DefaultCombine is the registry's default.
var Combines = []Combine{MeanLogits, MeanProbs, MajorityVote}

// DefaultCombine is how an ensemble combines unless it says otherwise.
const DefaultCombine = MeanLogits

// Member is one model of an ensemble.
type Member struct {
	Name   string
	Weight float64
	// Perm maps ensemble label j to the member's logit column Perm[j].
	Perm []int
}

// Ensemble is a fixed set of members and how to combine them.
type Ensemble struct {
	Members []Member
	Combine Combine
	// MinMembers is how many members must answer (default: all).
	MinMembers int
	// Concurrency bounds members called at once (default: all).
	Concurrency int
	// Activation is the members' score function, which mean_probs averages
	// (softmax when empty; see CombineScores).
	Activation calibration.Activation
}

// Call predicts texts with member i (its own pool and cache).
type Call func(ctx context.Context, i int, texts []string) (protocol.Logits, error)

// Used is a member that answered, with its logits in ensemble label order.
type Used struct {
	Name   string
	Weight float64
	Logits protocol.Logits
}

// Result is a combined answer.
type Result struct {
	Logits protocol.Logits
	Used   []Used // members that answered, in member order
	Failed []string
}

// Predict calls every member concurrently and combines what answered.
// With fewer than MinMembers answers it fails with ErrUnavailable naming the
// members that failed; a request error (bad input) or the client leaving
// fails it at once.
func (e *Ensemble) Predict(ctx context.Context, texts []string, call Call) (Result, error) {
	return e.Run(ctx, func(ctx context.Context, i int) (protocol.Logits, error) { return call(ctx, i, texts) })
}

// Run is Predict for any input the caller holds (texts, text pairs): call
// scores it with member i.
func (e *Ensemble) Run(ctx context.Context, call func(ctx context.Context, i int) (protocol.Logits, error)) (Result, error) {
	n := len(e.Members)
	outs := make([]protocol.Logits, n)
	errs := make([]error, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, min(n, orDefault(e.Concurrency, n))))
	var mu sync.Mutex
	for i := range e.Members {
		g.Go(func() error {
			l, err := call(gctx, i)
			if err != nil {
				mu.Lock()
				errs[i] = err
				mu.Unlock()
				// The request's own fault, or the client gone: stop everyone.
				if errors.Is(err, protocol.ErrInvalidInput) || errors.Is(err, protocol.ErrTooLarge) || ctx.Err() != nil {
					return err
				}
				return nil
			}
			outs[i] = l
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Result{}, err
	}
	var res Result
	var failures []string
	for i, m := range e.Members {
		if errs[i] != nil {
			res.Failed = append(res.Failed, m.Name)
			failures = append(failures, fmt.Sprintf("%s: %v", m.Name, errs[i]))
			continue
		}
		res.Used = append(res.Used, Used{Name: m.Name, Weight: m.Weight, Logits: permute(outs[i], m.Perm)})
	}
	if need := orDefault(e.MinMembers, n); len(res.Used) < need {
		return Result{}, fmt.Errorf("%w: %d of %d ensemble members answered, %d needed (%s)", protocol.ErrUnavailable, len(res.Used), n, need, strings.Join(failures, "; "))
	}
	res.Logits = CombineScores(e.Combine, e.Activation, res.Used)
	return res, nil
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

func permute(l protocol.Logits, perm []int) protocol.Logits {
	if perm == nil {
		return l
	}
	out := make(protocol.Logits, len(l))
	for i, row := range l {
		out[i] = PermuteRow(row, perm)
	}
	return out
}

// PermuteRow reorders one row of logits: out[j] = row[perm[j]] (nil perm:
// the row as it is).
func PermuteRow(row []float32, perm []int) []float32 {
	if perm == nil {
		return row
	}
	out := make([]float32, len(perm))
	for j, src := range perm {
		out[j] = row[src]
	}
	return out
}

// CombineLogits combines members' logits (already in ensemble label order)
// with their weights, renormalised over the members given, for softmax
// models.
func CombineLogits(c Combine, used []Used) protocol.Logits {
	return CombineScores(c, calibration.ActivationSoftmax, used)
}

// CombineScores is CombineLogits for members scored with act. mean_probs
// averages act's scores and returns logits that act maps back to that
// average: the logs of a softmax average, the log-odds of a sigmoid one,
// the average itself when act is none.
func CombineScores(c Combine, act calibration.Activation, used []Used) protocol.Logits {
	total := 0.0
	for _, u := range used {
		total += u.Weight
	}
	n, k := len(used[0].Logits), len(used[0].Logits[0])
	out := make(protocol.Logits, n)
	for i := range out {
		acc := make([]float64, k)
		for _, u := range used {
			w := u.Weight / total
			row := u.Logits[i]
			switch c {
			case MeanProbs:
				for j, p := range calibration.Scores(act, row, 1) {
					acc[j] += w * p
				}
			case MajorityVote:
				acc[calibration.Argmax(row)] += w
			default:
				for j, v := range row {
					acc[j] += w * float64(v)
				}
			}
		}
		r := make([]float32, k)
		for j, v := range acc {
			switch {
			case c == MeanProbs && act == calibration.ActivationSigmoid:
				v = math.Max(v, 1e-9)
				v = math.Log(v) - math.Log(math.Max(1-v, 1e-9))
			case c == MeanProbs && act == calibration.ActivationNone:
			case c == MeanProbs || c == MajorityVote:
				v = math.Log(math.Max(v, 1e-9))
			}
			r[j] = float32(v)
		}
		out[i] = r
	}
	return out
}

// Permutation finds, for each of the ensemble's labels, the member's column
// holding it. labelMap renames member labels (member name → ensemble name)
// first. Without a map the member's labels must equal the ensemble's, in
// order: a reordering must be declared, not guessed.
func Permutation(member, ensemble []string, labelMap map[string]string) ([]int, error) {
	if len(labelMap) == 0 {
		if !slices.Equal(member, ensemble) {
			return nil, fmt.Errorf("labels %v differ from %v (declare a label_map to reorder or rename)", member, ensemble)
		}
		return nil, nil
	}
	col := map[string]int{}
	for j, l := range member {
		name := l
		if to, ok := labelMap[l]; ok {
			name = to
		}
		if _, dup := col[name]; dup {
			return nil, fmt.Errorf("label_map sends two labels to %q", name)
		}
		col[name] = j
	}
	if len(col) != len(ensemble) {
		return nil, fmt.Errorf("labels %v (mapped) do not match %v", keys(col), ensemble)
	}
	perm := make([]int, len(ensemble))
	for j, l := range ensemble {
		c, ok := col[l]
		if !ok {
			return nil, fmt.Errorf("no label maps to %q (member labels %v, label_map %v)", l, member, labelMap)
		}
		perm[j] = c
	}
	return perm, nil
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
