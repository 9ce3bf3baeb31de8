package gateway_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/protocol"
)

// traceSeer answers one logit per text and remembers the trace id of the
// context it was called with: what a remote replica's call would carry.
type traceSeer struct {
	mu    sync.Mutex
	trace string
}

func (p *traceSeer) Predict(ctx context.Context, texts []string) (protocol.Logits, error) {
	p.mu.Lock()
	p.trace = trace.SpanContextFromContext(ctx).TraceID().String()
	p.mu.Unlock()
	out := make(protocol.Logits, len(texts))
	for i := range out {
		out[i] = []float32{0.1, 0.9}
	}
	return out, nil
}

func (p *traceSeer) Metadata() protocol.ModelMetadata {
	return protocol.ModelMetadata{Labels: []string{"NEGATIVE", "POSITIVE"}, MaxLength: 512}
}

func (p *traceSeer) Close() error { return nil }

// With tracing off the gateway records no spans, yet a caller's trace
// context still reaches the access log and the predictor (and so the
// calls to remote replicas).
func TestTraceContextContinuesWithTracingOff(t *testing.T) {
	var logs bytes.Buffer
	seer := &traceSeer{}
	reg, err := gateway.NewRegistry([]gateway.Servable{newModel(t, "m", "", gateway.ModeLabel, seer)})
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.NewJSONHandler(&logs, nil)), Limits: testLimits})
	srv.SetRegistry(reg)
	srv.SetReady(true)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest("POST", "/v1/models/m:predict", strings.NewReader(`{"instances": ["a"]}`))
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if !strings.Contains(logs.String(), `"trace_id":"`+traceID+`"`) {
		t.Errorf("access log lacks the caller's trace id:\n%s", logs.String())
	}
	seer.mu.Lock()
	defer seer.mu.Unlock()
	if seer.trace != traceID {
		t.Errorf("predictor saw trace %q, want %q", seer.trace, traceID)
	}
}
