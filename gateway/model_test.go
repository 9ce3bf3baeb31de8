package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/gateway/pool"
	"github.com/chorusml/chorus/protocol"
)

type stub struct{ labels []string }

func (s stub) Predict(_ context.Context, texts []string) (protocol.Logits, error) {
	out := make(protocol.Logits, len(texts))
	for i := range out {
		out[i] = make([]float32, len(s.labels))
	}
	return out, nil
}
func (s stub) Metadata() protocol.ModelMetadata { return protocol.ModelMetadata{Labels: s.labels} }
func (s stub) Close() error                     { return nil }

func version(t *testing.T, name string, traffic int, labels ...string) *Version {
	t.Helper()
	p, err := pool.New([]*pool.Replica{pool.NewReplica(name+"-r0", 1, stub{labels})}, pool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &Version{Name: name, Traffic: traffic, Pool: p}
}

func TestRouteByTraffic(t *testing.T) {
	m, err := NewModel(ModelOptions{Name: "sst2", Versions: []*Version{version(t, "1", 90, "a", "b"), version(t, "2", 10, "a", "b")}})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for n := range 100 {
		m.rand = func(int) int { return n }
		v, err := m.Route("")
		if err != nil {
			t.Fatal(err)
		}
		counts[v.Name]++
	}
	if counts["1"] != 90 || counts["2"] != 10 {
		t.Errorf("split %v, want 90/10", counts)
	}
	if v, _ := m.Route("2"); v.Name != "2" {
		t.Errorf("explicit version routed to %q", v.Name)
	}
	if _, err := m.Route("3"); !errors.Is(err, protocol.ErrModelNotFound) {
		t.Errorf("unknown version: %v", err)
	}
}

func TestDefaultVersion(t *testing.T) {
	m, err := NewModel(ModelOptions{Name: "sst2", Versions: []*Version{version(t, "stable", 0, "a", "b"), version(t, "next", 0, "a", "b")}, DefaultVersion: "next"})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if v, _ := m.Route(""); v.Name != "next" {
			t.Fatalf("unversioned request went to %q, want the default", v.Name)
		}
	}
	if _, err := NewModel(ModelOptions{Name: "sst2", Versions: []*Version{version(t, "stable", 0, "a", "b")}, DefaultVersion: "nope"}); err == nil {
		t.Error("unknown default version accepted")
	}
}

func TestLabelMismatchNamesBoth(t *testing.T) {
	_, err := NewModel(ModelOptions{Name: "sst2", Versions: []*Version{version(t, "1", 0, "NEG", "POS"), version(t, "2", 0, "POS", "NEG")}})
	if err == nil || !strings.Contains(err.Error(), "2-r0") || !strings.Contains(err.Error(), "1-r0") {
		t.Errorf("mismatch error %v should name both replicas", err)
	}
	_, err = NewModel(ModelOptions{Name: "sst2", Labels: []string{"NEG", "POS"}, Versions: []*Version{version(t, "1", 0, "NEG", "NEU", "POS")}})
	if err == nil || !strings.Contains(err.Error(), "registry's labels") {
		t.Errorf("mismatch with declared labels: %v", err)
	}
}

// A calibration file sets the temperature, or (vector scaling) a
// calibrator applied before the softmax; sigmoid methods and files for
// other labels are refused.
func TestCalibrationFiles(t *testing.T) {
	v := version(t, "", 0, "a", "b")
	meta := v.Pool.Replicas()[0].Backend().Metadata()
	file := func(c calibration.Calibrator, labels ...string) Calibration {
		return Calibration{File: &calibration.File{Fingerprint: meta.Fingerprint, Labels: labels, Calibrator: c}}
	}
	m, err := NewModel(ModelOptions{Name: "m", Versions: []*Version{v}, Calibration: file(calibration.TemperatureCalibrator(2), "a", "b")})
	if err != nil || m.Scoring().Temperature != 2 || m.Scoring().Calibrator != nil {
		t.Fatalf("temperature file: %+v %v", m.Scoring(), err)
	}
	vec := calibration.Calibrator{Method: calibration.MethodVector, Scale: []float64{2, 0.5}, Bias: []float64{0, 1}}
	m, err = NewModel(ModelOptions{Name: "m", Versions: []*Version{v}, Calibration: file(vec, "a", "b")})
	if err != nil || m.Scoring().Calibrator == nil || m.Scoring().Temperature != 1 {
		t.Fatalf("vector file: %+v %v", m.Scoring(), err)
	}
	r := newRender(m, nil)
	got, want := r.probs([]float32{1, 1}), softmax([]float32{2, 1.5}, 1)
	if got[0] != want[0] || got[1] != want[1] {
		t.Errorf("vector-scaled probabilities %v, want softmax(a·z+b) %v", got, want)
	}
	if c := r.calibrated([]float32{1, 1}); c[0] != 2 || c[1] != 1.5 {
		t.Errorf("calibrated logits %v, want [2 1.5]", c)
	}
	sig := calibration.Calibrator{Method: calibration.MethodLabelTemperature, Activation: calibration.ActivationSigmoid, Temperatures: []float64{1, 2}}
	if _, err := NewModel(ModelOptions{Name: "m", Versions: []*Version{v}, Calibration: file(sig, "a", "b")}); !errors.Is(err, ErrCalibrationMismatch) {
		t.Errorf("sigmoid calibrator on a softmax model: %v", err)
	}
	if _, err := NewModel(ModelOptions{Name: "m", Versions: []*Version{v}, Calibration: file(calibration.TemperatureCalibrator(2), "x", "y")}); !errors.Is(err, ErrCalibrationMismatch) {
		t.Errorf("file for other labels: %v", err)
	}
	// The same sigmoid file serves on the model served with a sigmoid:
	// per-label temperatures, then a sigmoid per label.
	m, err = NewModel(ModelOptions{Name: "m", Versions: []*Version{v}, Scoring: Scoring{Activation: calibration.ActivationSigmoid}, Calibration: file(sig, "a", "b")})
	if err != nil {
		t.Fatalf("sigmoid calibrator on a sigmoid model: %v", err)
	}
	got = newRender(m, nil).probs([]float32{2, 2})
	if s := calibration.Sigmoid([]float64{2, 1}, 1); got[0] != float32(s[0]) || got[1] != float32(s[1]) {
		t.Errorf("label-temperature sigmoid %v, want %v", got, s)
	}
	if _, err := NewModel(ModelOptions{Name: "m", Versions: []*Version{v}, Scoring: Scoring{Activation: "tanh"}}); err == nil {
		t.Error("unknown activation accepted")
	}
}
