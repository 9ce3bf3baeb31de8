package ensemble

import (
	"math/rand/v2"
	"testing"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/protocol"
)

// On a constructed problem, calibrating the ensemble's combined logits
// (ensemble, then calibrate — what Chorus does) ends better calibrated than
// averaging the probabilities of separately calibrated members: averaging
// two calibrated but disagreeing members pulls confidence down, so the
// average is under-confident.
//
// Truth: 3 classes, true logits z ~ N(0, 3²), labels drawn from softmax(z).
// Two members see 2z plus independent noise N(0, 2²): each over-confident
// and noisy in its own way. Temperatures are fitted on one half and every
// ECE is measured on the other.
func TestEnsembleThenCalibrateBeatsCalibrateThenEnsemble(t *testing.T) {
	const n, k = 20_000, 3
	r := rand.New(rand.NewPCG(1, 2))
	m1, m2 := make([][]float64, n), make([][]float64, n)
	labels := make([]int, n)
	for i := range n {
		z := make([]float64, k)
		for j := range z {
			z[j] = r.NormFloat64() * 3
		}
		p := calibration.Softmax(z, 1)
		u, c := r.Float64(), 0.0
		labels[i] = k - 1
		for j, pj := range p {
			if c += pj; u < c {
				labels[i] = j
				break
			}
		}
		a, b := make([]float64, k), make([]float64, k)
		for j := range z {
			a[j] = 2*z[j] + 2*r.NormFloat64()
			b[j] = 2*z[j] + 2*r.NormFloat64()
		}
		m1[i], m2[i] = a, b
	}
	half := n / 2
	fit := func(l [][]float64) float64 {
		f, err := calibration.FitTemperature(l[:half], labels[:half])
		if err != nil {
			t.Fatal(err)
		}
		return f.T
	}
	toLogits := func(l [][]float64) protocol.Logits {
		out := make(protocol.Logits, len(l))
		for i, row := range l {
			out[i] = make([]float32, len(row))
			for j, v := range row {
				out[i][j] = float32(v)
			}
		}
		return out
	}
	toF64 := func(l protocol.Logits) [][]float64 {
		out := make([][]float64, len(l))
		for i, row := range l {
			out[i] = make([]float64, len(row))
			for j, v := range row {
				out[i][j] = float64(v)
			}
		}
		return out
	}

	// Ensemble, then calibrate: mean logits, one temperature.
	combined := toF64(CombineLogits(MeanLogits, []Used{{Weight: 1, Logits: toLogits(m1)}, {Weight: 1, Logits: toLogits(m2)}}))
	tEns := fit(combined)
	ensThenCal, err := calibration.Evaluate(combined[half:], labels[half:], tEns, 15)
	if err != nil {
		t.Fatal(err)
	}

	// Calibrate, then ensemble: each member at its own temperature, then the
	// average of their probabilities (as logs, so T = 1 reads them back).
	t1, t2 := fit(m1), fit(m2)
	scale := func(l [][]float64, t float64) protocol.Logits {
		out := toLogits(l)
		for _, row := range out {
			for j := range row {
				row[j] = float32(float64(row[j]) / t)
			}
		}
		return out
	}
	avg := toF64(CombineLogits(MeanProbs, []Used{{Weight: 1, Logits: scale(m1, t1)}, {Weight: 1, Logits: scale(m2, t2)}}))
	calThenEns, err := calibration.Evaluate(avg[half:], labels[half:], 1, 15)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("members' T %.3f, %.3f; ensemble T %.3f", t1, t2, tEns)
	t.Logf("held-out ECE: ensemble-then-calibrate %.4f, calibrate-then-ensemble %.4f (NLL %.4f vs %.4f)",
		ensThenCal.ECE, calThenEns.ECE, ensThenCal.NLL, calThenEns.NLL)
	if ensThenCal.ECE >= calThenEns.ECE {
		t.Errorf("ensemble-then-calibrate ECE %.4f is not below calibrate-then-ensemble %.4f", ensThenCal.ECE, calThenEns.ECE)
	}
}
