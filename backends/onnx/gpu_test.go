package onnx_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/backends/onnx"
)

// device is where the GPU tests run: CHORUS_TEST_DEVICE=cuda:0 on a GPU
// host (`make test-gpu`); unset everywhere else.
func device(tb testing.TB) string {
	d := os.Getenv("CHORUS_TEST_DEVICE")
	if d == "" {
		tb.Skip("CHORUS_TEST_DEVICE is unset: run `make test-gpu` on a GPU host (docs/GPU.md)")
	}
	return d
}

// The contract suite on CUDA, within 3e-4 of PyTorch's CPU fp32 logits.
func TestContractOnDevice(t *testing.T) {
	dev := device(t)
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			backendtest.RunWithTolerance(t, open(t, name, onnx.Options{Device: dev}), reference(t, name), 3e-4)
		})
	}
}

// BenchmarkDeviceThroughput runs one model at a fixed batch and sequence
// length: CHORUS_BENCH_MODEL (a model folder), CHORUS_BENCH_BATCH (default
// 128), CHORUS_BENCH_SEQ (tokens per text, default 128). It reports
// sequences per second of model time (tokenisation included).
func BenchmarkDeviceThroughput(b *testing.B) {
	dev := device(b)
	dir := os.Getenv("CHORUS_BENCH_MODEL")
	if dir == "" {
		dir = filepath.Join(models, "sst2-tiny-a")
	}
	batch, _ := strconv.Atoi(os.Getenv("CHORUS_BENCH_BATCH"))
	seq, _ := strconv.Atoi(os.Getenv("CHORUS_BENCH_SEQ"))
	batch, seq = max(batch, 1), max(seq, 2)
	if os.Getenv("CHORUS_BENCH_BATCH") == "" {
		batch = 128
	}
	if os.Getenv("CHORUS_BENCH_SEQ") == "" {
		seq = 128
	}
	m, err := rt.Open(dir, onnx.Options{Device: dev, MaxLength: seq})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	// "good" is one token in bert-base-uncased; [CLS] and [SEP] make seq.
	texts := make([]string, batch)
	for i := range texts {
		texts[i] = strings.Repeat("good ", seq)
	}
	for range 5 {
		if _, err := m.Predict(context.Background(), texts); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := m.Predict(context.Background(), texts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "seq/s")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/batch")
}
