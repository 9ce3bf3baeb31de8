package onnx_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/protocol"
)

// Predict fills the request's Timing: every part known, tokens exactly the
// tokens fed to the model; with batching, the queue time covers at least
// the wait for a batch that never fills.
func TestPredictRecordsTiming(t *testing.T) {
	texts := []string{"Hello, my dog is cute", "I am feeling sad", "a much longer text, to be padded against"}
	for _, c := range []struct {
		name     string
		batching onnx.Batching
		minQueue int
	}{
		{"unbatched", onnx.Batching{}, 0},
		{"batched", onnx.Batching{MaxBatchSize: 64, MaxQueueDelay: 20 * time.Millisecond}, 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: 1, Batching: c.batching})
			tokens := 0
			for _, s := range texts {
				ids, err := m.Tokenize(s)
				if err != nil {
					t.Fatal(err)
				}
				tokens += len(ids)
			}
			tm := &protocol.Timing{}
			if _, err := m.Predict(protocol.WithTiming(context.Background(), tm), texts); err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			tm.SetHeaders(h, time.Second, true)
			if got := h.Get(protocol.HeaderComputeTokens); got != strconv.Itoa(tokens) {
				t.Errorf("tokens %q, want %d", got, tokens)
			}
			for _, k := range []string{protocol.HeaderTokenizationTime, protocol.HeaderQueueTime, protocol.HeaderInferenceTime} {
				if _, ok := h[k]; !ok {
					t.Errorf("%s not recorded: %v", k, h)
				}
			}
			// The batcher's timer makes the first request wait MaxQueueDelay
			// for company (none comes); whole milliseconds round down.
			queue, _ := strconv.Atoi(h.Get(protocol.HeaderQueueTime))
			if queue < c.minQueue-1 || (c.minQueue == 0 && queue != 0) {
				t.Errorf("queue %d ms, want at least %d (0 without batching)", queue, c.minQueue)
			}
		})
	}
}
