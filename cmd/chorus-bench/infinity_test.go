package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chorusml/chorus/backends/onnx"
)

// The report says Infinity's --batch-size is Chorus's default batch bound;
// this keeps that true when the default moves.
func TestInfinityBatchSizeIsChorusDefault(t *testing.T) {
	if got, want := infinityBatchSize, onnx.DefaultBatching().MaxBatchSize; got != want {
		t.Fatalf("infinityBatchSize %d, Chorus's default max_batch_size %d", got, want)
	}
}

func TestCompareAnswers(t *testing.T) {
	names := []string{"NEGATIVE", "POSITIVE"}
	chorus := [][]float64{{0.2, 0.8}, {0.6, 0.4}}
	for _, tc := range []struct {
		name      string
		infinity  []map[string]float64
		same      int
		maxDelta  float64
		wantError string
	}{
		{"same", []map[string]float64{{"POSITIVE": 0.8, "NEGATIVE": 0.2}, {"NEGATIVE": 0.6, "POSITIVE": 0.4}}, 2, 0, ""},
		{"close", []map[string]float64{{"POSITIVE": 0.80005, "NEGATIVE": 0.19995}, {"NEGATIVE": 0.6, "POSITIVE": 0.4}}, 2, 5e-5, ""},
		{"flipped label", []map[string]float64{{"POSITIVE": 0.8, "NEGATIVE": 0.2}, {"NEGATIVE": 0.4, "POSITIVE": 0.6}}, 1, 0.2, ""},
		{"unknown label", []map[string]float64{{"LABEL_1": 0.8, "LABEL_0": 0.2}, {"NEGATIVE": 0.6, "POSITIVE": 0.4}}, 0, 0, `no label "NEGATIVE"`},
		{"missing label", []map[string]float64{{"POSITIVE": 1}, {"NEGATIVE": 0.6, "POSITIVE": 0.4}}, 0, 0, "1 from infinity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := compareAnswers(chorus, tc.infinity, names)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("error %v, want one with %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.texts != 2 || a.sameLabel != tc.same || a.maxDelta < tc.maxDelta-1e-9 || a.maxDelta > tc.maxDelta+1e-9 {
				t.Fatalf("got %+v, want 2 texts, %d same, max Δ %g", a, tc.same, tc.maxDelta)
			}
		})
	}
}

func TestLabelNames(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"id2label": {"0": "NEGATIVE", "1": "POSITIVE"}}`)
	if got, err := labelNames(dir, 2); err != nil || !slices.Equal(got, []string{"NEGATIVE", "POSITIVE"}) {
		t.Fatalf("labelNames = %v, %v", got, err)
	}
	write(`{"model_type": "distilbert"}`) // transformers' names when config has none
	if got, err := labelNames(dir, 3); err != nil || !slices.Equal(got, []string{"LABEL_0", "LABEL_1", "LABEL_2"}) {
		t.Fatalf("labelNames = %v, %v", got, err)
	}
}

// Infinity's optimum engine must find exactly one graph, named model.onnx,
// at the top of the folder, beside the model's other files.
func TestInfinityModelDir(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"config.json", "tokenizer.json", "model.safetensors", "onnx/model.onnx", "onnx/model_quantized.onnx"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := infinityModelDir(dir, "onnx/model.onnx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(out) })
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"config.json", "model.onnx", "model.safetensors", "tokenizer.json"}; !slices.Equal(names, want) {
		t.Fatalf("files %v, want %v", names, want)
	}
	graph, err := os.ReadFile(filepath.Join(out, "model.onnx"))
	if err != nil || string(graph) != "onnx/model.onnx" {
		t.Fatalf("model.onnx holds %q (%v), want the fp32 graph", graph, err)
	}
}
