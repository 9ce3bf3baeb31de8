package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"

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
