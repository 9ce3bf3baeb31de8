package gateway_test

import (
	"log/slog"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/protocol"
)

var timingParts = []string{protocol.HeaderTokenizationTime, protocol.HeaderQueueTime, protocol.HeaderInferenceTime, protocol.HeaderComputeTokens}

// newTimingServer serves newServer's models with timing headers on or off
// and an in-process cache.
func newTimingServer(t *testing.T, on bool) *gateway.Server {
	t.Helper()
	base := newServer(t)
	srv := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: testLimits,
		Cache: gateway.CacheOptions{Store: cache.NewLRU(100, time.Hour)}, TimingHeaders: on})
	srv.SetRegistry(base.SetRegistry(nil))
	srv.SetReady(true)
	return srv
}

func TestTimingHeaders(t *testing.T) {
	srv := newTimingServer(t, true)

	// Computed by the in-process model: every part, and the tokens it ran on.
	miss := do(srv, "POST", "/v1/models/distilbert:predict", seedV1)
	if miss.Code != 200 || miss.Header().Get("X-Chorus-Cache") != "miss" {
		t.Fatalf("%d %s %v", miss.Code, miss.Body, miss.Header())
	}
	for _, k := range append([]string{protocol.HeaderComputeTime, protocol.HeaderTotalTime}, timingParts...) {
		if _, err := strconv.Atoi(miss.Header().Get(k)); err != nil {
			t.Errorf("%s: %q, want whole milliseconds or tokens", k, miss.Header().Get(k))
		}
	}
	tokens := miss.Header().Get(protocol.HeaderComputeTokens)
	if n, _ := strconv.Atoi(tokens); n < 2*3 { // [CLS] word … [SEP] for two texts
		t.Errorf("tokens %q for the seed's two sentences", tokens)
	}
	// V2, cache bypassed: the same texts are the same tokens.
	v2 := doH(srv, "POST", "/v2/models/distilbert/infer", seedV2, map[string]string{"Cache-Control": "no-cache"})
	if got := v2.Header().Get(protocol.HeaderComputeTokens); v2.Code != 200 || got != tokens {
		t.Errorf("V2 without cache: %d, tokens %q, want %s", v2.Code, got, tokens)
	}

	// A whole cache hit computed nothing.
	hit := do(srv, "POST", "/v1/models/distilbert:predict", seedV1)
	if hit.Header().Get("X-Chorus-Cache") != "hit" {
		t.Fatalf("second request: cache %q", hit.Header().Get("X-Chorus-Cache"))
	}
	for _, k := range timingParts {
		if got := hit.Header().Get(k); got != "0" {
			t.Errorf("cache hit %s: %q, want 0", k, got)
		}
	}

	// Errors and other routes carry none, as in TEI.
	for _, w := range []*httptest.ResponseRecorder{
		do(srv, "POST", "/v1/models/distilbert:predict", `{"instances": [1]}`),
		do(srv, "POST", "/v2/models/nope/infer", seedV2),
		do(srv, "GET", "/v2/models/distilbert", ""),
	} {
		if v, ok := w.Header()[protocol.HeaderComputeTime]; ok {
			t.Errorf("%d answer has %s: %v", w.Code, protocol.HeaderComputeTime, v)
		}
	}

	// server.timing_headers: false turns them off; bodies do not change.
	off := newTimingServer(t, false)
	w := do(off, "POST", "/v1/models/distilbert:predict", seedV1)
	for _, k := range append([]string{protocol.HeaderComputeTime}, timingParts...) {
		if v, ok := w.Header()[k]; ok {
			t.Errorf("timing headers off, yet %s: %v", k, v)
		}
	}
	if w.Body.String() != miss.Body.String() {
		t.Errorf("body with headers off %s, on %s", w.Body, miss.Body)
	}
}

// A gateway in front of a Chorus predictor reports the predictor's
// breakdown; in front of a predictor that sends none, only its own total.
func TestTimingHeadersThroughRemote(t *testing.T) {
	for _, predictorSends := range []bool{true, false} {
		predictor := httptest.NewServer(newTimingServer(t, predictorSends).Handler())
		t.Cleanup(predictor.Close)
		b, err := kserve.New(kserve.Config{URL: predictor.URL, Model: "distilbert", Protocol: "v2", Logits: kserve.LogitsTensor,
			Labels: []string{"NEGATIVE", "POSITIVE"}})
		if err != nil {
			t.Fatal(err)
		}
		front := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: testLimits, TimingHeaders: true})
		reg, err := gateway.NewRegistry([]gateway.Servable{newModel(t, "distilbert", "", gateway.ModeLabel, b)})
		if err != nil {
			t.Fatal(err)
		}
		front.SetRegistry(reg)
		front.SetReady(true)

		w := do(front, "POST", "/v1/models/distilbert:predict", seedV1)
		direct := do(newTimingServer(t, true), "POST", "/v1/models/distilbert:predict", seedV1)
		if w.Code != 200 || w.Body.String() != direct.Body.String() {
			t.Fatalf("through the remote: %d %s, want %s", w.Code, w.Body, direct.Body)
		}
		if w.Header().Get(protocol.HeaderComputeTime) == "" {
			t.Errorf("no total: %v", w.Header())
		}
		for _, k := range timingParts {
			got, ok := w.Header()[k]
			if predictorSends && (!ok || w.Header().Get(k) == "") {
				t.Errorf("predictor sends %s, the gateway lost it: %v", k, w.Header())
			}
			if !predictorSends && ok {
				t.Errorf("predictor sends no %s, yet the gateway says %v", k, got)
			}
		}
		if predictorSends && w.Header().Get(protocol.HeaderComputeTokens) != direct.Header().Get(protocol.HeaderComputeTokens) {
			t.Errorf("tokens through the remote %s, direct %s", w.Header().Get(protocol.HeaderComputeTokens), direct.Header().Get(protocol.HeaderComputeTokens))
		}
	}
}
