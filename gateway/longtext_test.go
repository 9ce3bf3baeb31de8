package gateway_test

import (
	"strings"
	"testing"

	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/gateway"
)

// A model that windows long texts must be served in-process: a remote
// replica takes texts, not token windows, and cannot count them.
func TestWindowsNeedInProcessReplicas(t *testing.T) {
	k, err := kserve.New(kserve.Config{URL: "http://127.0.0.1:1", Model: "m", Protocol: "v2", Logits: kserve.LogitsTensor, Labels: []string{"NEGATIVE", "POSITIVE"}})
	if err != nil {
		t.Fatal(err)
	}
	remote := newModel(t, "remote", "", gateway.ModeLabel, k)
	defer remote.Close()
	_, err = gateway.NewModel(gateway.ModelOptions{Name: "long", Versions: remote.Versions(), Windows: &gateway.WindowsReport{}})
	if err == nil || !strings.Contains(err.Error(), "cannot window long texts") {
		t.Errorf("remote replica accepted for long_text chunk: %v", err)
	}
}
