package gateway

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/chorusml/chorus/protocol"
)

// The KServe docs' numbers for distilbert-base-uncased-finetuned-sst-2-english:
// these logits print as these strings in each mode.
func TestKServeStringsFromDocumentedLogits(t *testing.T) {
	l := protocol.Logits{{-4.068715572357178, 4.366886138916016}, {3.8371405601501465, -3.1609644889831543}}
	if got, want := (render{mode: ModeProbabilities, t: 1}).kserveStrings(l), []string{"{0: 0.0002, 1: 0.9998}", "{0: 0.9991, 1: 0.0009}"}; !slices.Equal(got, want) {
		t.Errorf("probabilities %q, want %q", got, want)
	}
	if got, want := (render{mode: ModeRawLogits, t: 1}).kserveStrings(l), []string{"{0: -4.068715572357178, 1: 4.366886138916016}", "{0: 3.8371405601501465, 1: -3.1609644889831543}"}; !slices.Equal(got, want) {
		t.Errorf("raw logits %q, want %q", got, want)
	}
	if got := labels(l); !slices.Equal(got, []int64{1, 0}) {
		t.Errorf("labels %v", got)
	}
}

func TestSoftmaxIsStable(t *testing.T) {
	p := softmax([]float32{1000, 999, -1000}, 1)
	sum := 0.0
	for _, v := range p {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("softmax overflowed: %v", p)
		}
		sum += float64(v)
	}
	if math.Abs(sum-1) > 1e-6 || p[0] < p[1] || p[2] != 0 {
		t.Errorf("softmax %v", p)
	}
}

func TestArgmaxTakesFirstOfTies(t *testing.T) {
	if got := argmax([]float32{0.5, 0.5, 0.1}); got != 0 {
		t.Errorf("argmax = %d, want 0 like torch", got)
	}
}

// Temperature changes probabilities and calibrated logits, never labels or
// raw logits.
func TestTemperature(t *testing.T) {
	l := protocol.Logits{{2, 0, -1}}
	hot, cold := render{t: 2}, render{t: 1}
	if hot.probs(l[0])[0] >= cold.probs(l[0])[0] {
		t.Errorf("T=2 should flatten: %v vs %v", hot.probs(l[0]), cold.probs(l[0]))
	}
	want := softmax([]float32{1, 0, -0.5}, 1)
	for j, p := range hot.probs(l[0]) {
		if math.Abs(float64(p-want[j])) > 1e-7 {
			t.Errorf("softmax(z/2) = %v, want %v", hot.probs(l[0]), want)
		}
	}
	if got := hot.calibrated(l[0]); got[0] != 1 || got[2] != -0.5 {
		t.Errorf("calibrated logits %v", got)
	}
	if hot.v1Predictions(l, protocol.OutputLabel).([]int64)[0] != 0 {
		t.Error("label changed with T")
	}
	if fmt.Sprint(hot.v1Predictions(l, protocol.OutputLogits)) != fmt.Sprint(cold.v1Predictions(l, protocol.OutputLogits)) {
		t.Error("raw logits changed with T")
	}
}
