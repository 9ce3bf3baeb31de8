package ensemble

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/protocol"
)

func TestCombine(t *testing.T) {
	a := Used{Name: "a", Weight: 3, Logits: protocol.Logits{{2, 0}}}
	b := Used{Name: "b", Weight: 1, Logits: protocol.Logits{{-2, 2}}}
	if got := CombineLogits(MeanLogits, []Used{a, b})[0]; got[0] != 1 || got[1] != 0.5 {
		t.Errorf("mean_logits %v, want [1 0.5]", got)
	}
	pa, pb := calibration.Softmax(a.Logits[0], 1), calibration.Softmax(b.Logits[0], 1)
	got := CombineLogits(MeanProbs, []Used{a, b})[0]
	for j := range got {
		want := 0.75*pa[j] + 0.25*pb[j]
		if d := math.Abs(math.Exp(float64(got[j])) - want); d > 1e-6 {
			t.Errorf("mean_probs label %d: exp(logit) %v, want %v", j, math.Exp(float64(got[j])), want)
		}
	}
	vote := CombineLogits(MajorityVote, []Used{a, b})[0]
	if math.Abs(math.Exp(float64(vote[0]))-0.75) > 1e-6 || math.Abs(math.Exp(float64(vote[1]))-0.25) > 1e-6 {
		t.Errorf("majority_vote shares %v", vote)
	}
	unanimous := CombineLogits(MajorityVote, []Used{a, {Name: "c", Weight: 1, Logits: protocol.Logits{{5, 1}}}})[0]
	if math.IsInf(float64(unanimous[1]), 0) || unanimous[0] <= unanimous[1] {
		t.Errorf("a vote share of 0 must stay finite: %v", unanimous)
	}
}

func TestPermutation(t *testing.T) {
	ens := []string{"NEGATIVE", "POSITIVE"}
	if p, err := Permutation(ens, ens, nil); err != nil || p != nil {
		t.Errorf("same labels: %v %v", p, err)
	}
	if _, err := Permutation([]string{"POSITIVE", "NEGATIVE"}, ens, nil); err == nil || !strings.Contains(err.Error(), "label_map") {
		t.Errorf("reordered labels without a map: %v", err)
	}
	p, err := Permutation([]string{"pos", "neg"}, ens, map[string]string{"pos": "POSITIVE", "neg": "NEGATIVE"})
	if err != nil || fmt.Sprint(p) != "[1 0]" {
		t.Errorf("map: %v %v", p, err)
	}
	if _, err := Permutation([]string{"a", "b"}, ens, map[string]string{"a": "NEGATIVE", "b": "NEGATIVE"}); err == nil {
		t.Error("two labels mapped to one accepted")
	}
	if got := permute(protocol.Logits{{1, 2}}, p)[0]; got[0] != 2 || got[1] != 1 {
		t.Errorf("permute %v", got)
	}
	// Label lists compare element by element: ["a b"] is not ["a", "b"].
	if _, err := Permutation([]string{"a b"}, []string{"a", "b"}, nil); err == nil {
		t.Error(`["a b"] accepted as ["a", "b"]`)
	}
}

func TestMinMembersAndFailures(t *testing.T) {
	e := &Ensemble{Members: []Member{{Name: "a", Weight: 1}, {Name: "b", Weight: 1}, {Name: "c", Weight: 2}}, Combine: MeanLogits, MinMembers: 2}
	down := fmt.Errorf("refused: %w", protocol.ErrUnavailable)
	call := func(failing ...string) Call {
		return func(_ context.Context, i int, texts []string) (protocol.Logits, error) {
			for _, f := range failing {
				if e.Members[i].Name == f {
					return nil, down
				}
			}
			return protocol.Logits{{float32(i), 0}}, nil
		}
	}
	res, err := e.Predict(context.Background(), []string{"x"}, call("b"))
	if err != nil || len(res.Used) != 2 || fmt.Sprint(res.Failed) != "[b]" {
		t.Fatalf("one down of three, min 2: %+v %v", res, err)
	}
	// a (0) weight 1 and c (2) weight 2, renormalised: (0*1 + 2*2)/3.
	if got := res.Logits[0][0]; math.Abs(float64(got)-4.0/3) > 1e-6 {
		t.Errorf("renormalised mean %v, want 4/3", got)
	}
	_, err = e.Predict(context.Background(), []string{"x"}, call("a", "b"))
	if !errors.Is(err, protocol.ErrUnavailable) || !strings.Contains(err.Error(), "1 of 3") {
		t.Errorf("two down, min 2: %v", err)
	}
	bad := func(_ context.Context, i int, _ []string) (protocol.Logits, error) {
		return nil, fmt.Errorf("bad text: %w", protocol.ErrInvalidInput)
	}
	if _, err := e.Predict(context.Background(), []string{"x"}, bad); !errors.Is(err, protocol.ErrInvalidInput) {
		t.Errorf("a request error must fail the request as such: %v", err)
	}
}

// A sigmoid ensemble's mean_probs averages each label's sigmoid, and its
// logits are log-odds that the sigmoid maps back to that average (the
// softmax logs would not: labels are independent).
func TestCombineSigmoidMeanProbs(t *testing.T) {
	a := Used{Name: "a", Weight: 1, Logits: protocol.Logits{{2, -1, 0}}}
	b := Used{Name: "b", Weight: 3, Logits: protocol.Logits{{-2, 4, 0.5}}}
	got := CombineScores(MeanProbs, calibration.ActivationSigmoid, []Used{a, b})[0]
	back := calibration.Sigmoid(got, 1)
	sa, sb := calibration.Sigmoid(a.Logits[0], 1), calibration.Sigmoid(b.Logits[0], 1)
	for j := range got {
		if want := 0.25*sa[j] + 0.75*sb[j]; math.Abs(back[j]-want) > 1e-6 {
			t.Errorf("label %d: sigmoid(combined) %v, want the mean sigmoid %v", j, back[j], want)
		}
	}
	none := CombineScores(MeanProbs, calibration.ActivationNone, []Used{a, b})[0]
	if math.Abs(float64(none[1])-(0.25*-1+0.75*4)) > 1e-6 {
		t.Errorf("activation none averages the raw scores: %v", none)
	}
}
