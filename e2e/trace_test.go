package e2e

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/chorusml/chorus/internal/proctest"
)

// span is what the test needs of a received span.
type span struct {
	service, name     string
	trace, id, parent string
	kind              tracepb.Span_SpanKind
}

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps every span.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []span
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var in coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range in.ResourceSpans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans = append(r.spans, span{service: service, name: s.Name, kind: s.Kind,
					trace: hex.EncodeToString(s.TraceId), id: hex.EncodeToString(s.SpanId), parent: hex.EncodeToString(s.ParentSpanId)})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (r *otlpReceiver) all() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]span(nil), r.spans...)
}

// One request through gateway → Chorus predictor is one trace, holding both
// processes' spans, the predictor's server span a child of the gateway's
// client span for that attempt.
func TestTraceAcrossGatewayAndPredictor(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	env := func(service string) []string {
		return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + collector.URL, "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
			"OTEL_SERVICE_NAME=" + service, "OTEL_BSP_SCHEDULE_DELAY=50"}
	}
	root := proctest.Root()
	predCfg := filepath.Join(t.TempDir(), "predictor.yaml")
	os.WriteFile(predCfg, []byte(fmt.Sprintf("cache: {enabled: false}\nmodels:\n  - name: sst2\n    replicas: [{type: onnx, model_dir: %q, batching: {max_batch_size: 8}}]\n",
		filepath.Join(root, "testdata/models/sst2-tiny-a"))), 0o644)
	pred := startEnv(t, env("predictor"), "serve", "--config", predCfg)
	pred.waitReady(30 * time.Second)
	gwCfg := filepath.Join(t.TempDir(), "gateway.yaml")
	os.WriteFile(gwCfg, []byte(fmt.Sprintf("cache: {enabled: false}\nmodels:\n  - name: sst2\n    labels: [NEGATIVE, POSITIVE]\n    pool: {health: {interval: -1s}}\n    replicas: [{type: kserve, url: %q, logits: tensor}]\n",
		pred.URL)), 0o644)
	gw := startEnv(t, env("gateway"), "serve", "--config", gwCfg)
	gw.waitReady(30 * time.Second)

	if status, body := post(t, gw.URL+"/v2/models/sst2/infer", seedV2); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	// SIGTERM flushes both processes' spans.
	gw.stop(syscall.SIGTERM, 30*time.Second)
	pred.stop(syscall.SIGTERM, 30*time.Second)

	spans := recv.all()
	var gwServer *span
	for i, s := range spans {
		if s.service == "gateway" && s.kind == tracepb.Span_SPAN_KIND_SERVER && s.name == "POST /v2/models/:name/infer" {
			gwServer = &spans[i]
		}
	}
	if gwServer == nil {
		t.Fatalf("no gateway server span among %d spans: %+v", len(spans), spans)
	}
	byID := map[string]span{}
	var trace []span
	for _, s := range spans {
		if s.trace == gwServer.trace {
			trace = append(trace, s)
			byID[s.id] = s
		}
	}
	names := map[string]bool{}
	var predServer *span
	for i, s := range trace {
		names[s.service+"/"+s.name] = true
		if s.service == "predictor" && s.kind == tracepb.Span_SPAN_KIND_SERVER {
			predServer = &trace[i]
		}
	}
	t.Logf("trace %s: %d spans: %v", gwServer.trace, len(trace), names)
	for _, want := range []string{"gateway/chorus.decode", "gateway/chorus.predict", "gateway/chorus.attempt",
		"predictor/chorus.predict", "predictor/chorus.tokenize", "predictor/chorus.batch.wait"} {
		if !names[want] {
			t.Errorf("trace lacks %s", want)
		}
	}
	if predServer == nil {
		t.Fatal("the predictor's server span is not in the gateway's trace: context was not propagated")
	}
	client, ok := byID[predServer.parent]
	if !ok || client.service != "gateway" || client.kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Fatalf("predictor server span's parent is %+v, want the gateway's client span", client)
	}
	// Walk up from the client span to the gateway's server span.
	for s := client; s.id != gwServer.id; {
		p, ok := byID[s.parent]
		if !ok {
			t.Fatalf("broken parent chain at %s/%s", s.service, s.name)
		}
		s = p
	}
	// The predictor's ONNX run joins the trace by a link (it may serve
	// several requests), so it is found by trace id among all spans.
	foundRun := false
	for _, s := range spans {
		if s.service == "predictor" && s.name == "chorus.onnx.run" {
			foundRun = true
		}
	}
	if !foundRun {
		t.Error("no chorus.onnx.run span from the predictor")
	}
}
