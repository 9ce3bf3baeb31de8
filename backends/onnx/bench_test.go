package onnx_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/chorusml/chorus/backends/onnx"
)

// The model path under load: 64 concurrent one-text requests (2 procs × 32)
// into the tiny fixture with the default (continuous) batching, so that
// what is not the model shows. Profile with
//
//	go test -run '^$' -bench PredictConcurrent -benchmem -cpuprofile cpu.out -memprofile mem.out ./backends/onnx
func BenchmarkPredictConcurrent(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts onnx.Batching
	}{{"continuous", onnx.DefaultBatching()}, {"off", onnx.Batching{}}} {
		b.Run(mode.name, func(b *testing.B) {
			m, err := rt.Open(models+"/sst2-tiny-a", onnx.Options{Batching: mode.opts})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			texts := make([]string, 200)
			for i := range texts {
				texts[i] = fmt.Sprintf("review %d: the film was surprisingly good", i)
			}
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := m.Predict(context.Background(), texts[i%len(texts):i%len(texts)+1]); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}
