package protocol_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/chorusml/chorus/protocol"
)

func TestTimingAddsUpAndRoundTrips(t *testing.T) {
	tm := &protocol.Timing{}
	ctx := protocol.WithTiming(context.Background(), tm)
	if protocol.TimingFrom(ctx) != tm {
		t.Fatal("TimingFrom does not return what WithTiming stored")
	}
	// Two ensemble members add to one record concurrently (-race checks).
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			r := protocol.TimingFrom(ctx)
			r.AddTokenization(2*time.Millisecond, 7)
			r.AddQueue(3 * time.Millisecond)
			r.AddInference(5 * time.Millisecond)
		})
	}
	wg.Wait()
	h := http.Header{}
	tm.SetHeaders(h, 42*time.Millisecond+900*time.Microsecond, true)
	want := map[string]string{"X-Compute-Time": "42", "X-Total-Time": "42", "X-Tokenization-Time": "4",
		"X-Queue-Time": "6", "X-Inference-Time": "10", "X-Compute-Tokens": "14"}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if len(h) != len(want) {
		t.Errorf("headers %v, want only %v", h, want)
	}

	// A gateway reads a remote Chorus's headers back into its own record.
	remote := &protocol.Timing{}
	remote.AddHeaders(h)
	back := http.Header{}
	remote.SetHeaders(back, time.Second, true)
	for _, k := range []string{"X-Tokenization-Time", "X-Queue-Time", "X-Inference-Time", "X-Compute-Tokens"} {
		if back.Get(k) != h.Get(k) {
			t.Errorf("%s after a round trip: %q, want %q", k, back.Get(k), h.Get(k))
		}
	}
}

// A part some backend could not state is left out, not guessed; the total
// is always there.
func TestTimingUnknownParts(t *testing.T) {
	tm := &protocol.Timing{}
	tm.AddTokenization(time.Millisecond, 3) // an in-process member
	tm.AddHeaders(http.Header{"X-Inference-Time": {"7"}, "X-Queue-Time": {"soon"}})
	h := http.Header{}
	tm.SetHeaders(h, 9*time.Millisecond, true)
	if h.Get("X-Compute-Time") != "9" || h.Get("X-Inference-Time") != "7" {
		t.Errorf("known parts: %v", h)
	}
	for _, k := range []string{"X-Tokenization-Time", "X-Compute-Tokens", "X-Queue-Time"} {
		if v, ok := h[k]; ok {
			t.Errorf("%s: %v, want it left out (the remote did not say)", k, v)
		}
	}

	// Nobody measured anything: only the total.
	h = http.Header{}
	(&protocol.Timing{}).SetHeaders(h, time.Millisecond, true)
	if len(h) != 2 || h.Get("X-Compute-Time") != "1" {
		t.Errorf("nothing measured: %v, want the total only", h)
	}
	// Nothing computed (a whole cache hit): every part is zero, even without a record.
	h = http.Header{}
	var none *protocol.Timing
	none.AddInference(time.Second) // a nil record ignores calls
	none.SetHeaders(h, 0, false)
	for _, k := range []string{"X-Tokenization-Time", "X-Queue-Time", "X-Inference-Time", "X-Compute-Tokens"} {
		if h.Get(k) != "0" {
			t.Errorf("cache hit %s: %q, want 0", k, h.Get(k))
		}
	}
	if protocol.TimingFrom(context.Background()) != nil {
		t.Error("TimingFrom without a record is not nil")
	}
}
