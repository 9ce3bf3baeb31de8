package onnx_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/chorusml/chorus/backends/onnx"
)

// The demo model's shipped int8 graph (scripts/onnx_tools/variants.py)
// agrees with its fp32 graph on at least 99.5% of the labelled test split,
// and has a fingerprint of its own (so its cache entries and calibration
// are its own).
func TestDemoInt8Agreement(t *testing.T) {
	const demo = "../../models/demo-sentiment"
	fp32, err := rt.Open(demo, onnx.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer fp32.Close()
	int8, err := rt.Open(demo, onnx.Options{IntraOpThreads: 1, GraphFile: "onnx/model_quantized.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	defer int8.Close()
	if fp32.Metadata().Fingerprint == int8.Metadata().Fingerprint {
		t.Error("int8 and fp32 graphs share a fingerprint")
	}
	f, err := os.Open("../../data/demo-sentiment/test.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var texts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row struct{ Text string }
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		texts = append(texts, row.Text)
	}
	agree := 0
	for start := 0; start < len(texts); start += 100 {
		batch := texts[start:min(start+100, len(texts))]
		a, err := fp32.Predict(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		b, err := int8.Predict(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for i := range batch {
			if argmax(a[i]) == argmax(b[i]) {
				agree++
			}
		}
	}
	rate := float64(agree) / float64(len(texts))
	t.Logf("int8 agrees with fp32 on %d of %d test texts (%.4f)", agree, len(texts), rate)
	if len(texts) < 1000 || rate < 0.995 {
		t.Errorf("label agreement %.4f on %d texts, want ≥ 0.995", rate, len(texts))
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
