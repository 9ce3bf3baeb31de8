package gateway_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/protocol/oippb"
)

// serveGRPC serves srv's gRPC service on a loopback port and dials it.
func serveGRPC(t *testing.T, srv *gateway.Server) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := srv.NewGRPCServer()
	served := make(chan struct{})
	go func() { defer close(served); _ = g.Serve(ln) }()
	t.Cleanup(func() { g.Stop(); <-served })
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

var texts = []string{"Hello, my dog is cute", "I am feeling sad", "héllo wörld"}

// v2JSON asks the HTTP route for outputs as plain JSON.
func v2JSON(t *testing.T, srv *gateway.Server, model string, outputs ...string) protocol.InferResponse {
	t.Helper()
	req := map[string]any{"inputs": []map[string]any{{"name": "input-0", "shape": []int{len(texts)}, "datatype": "BYTES", "data": texts}}}
	var outs []map[string]any
	for _, o := range outputs {
		outs = append(outs, map[string]any{"name": o})
	}
	if outs != nil {
		req["outputs"] = outs
	}
	body, _ := json.Marshal(req)
	w := do(srv, "POST", "/v2/models/"+model+"/infer", string(body))
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var resp protocol.InferResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// dataJSON is an output's data as JSON, to compare transports.
func dataJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The same request over gRPC, raw and typed, answers what HTTP JSON does.
func TestGRPCInferMatchesHTTP(t *testing.T) {
	srv := newServer(t)
	c := oippb.NewGRPCInferenceServiceClient(serveGRPC(t, srv))
	ctx := context.Background()
	for _, model := range []string{"distilbert", "distilbert-probs", "raw", "bert"} {
		outputs := []string{protocol.OutputDefault, protocol.OutputLabel, protocol.OutputProbabilities, protocol.OutputLogits}
		want := v2JSON(t, srv, model, outputs...)
		for _, raw := range []bool{true, false} {
			t.Run(model+"/raw="+strconv.FormatBool(raw), func(t *testing.T) {
				req := &oippb.ModelInferRequest{ModelName: model, Id: "id-1",
					Inputs: []*oippb.ModelInferRequest_InferInputTensor{{Name: "input-0", Datatype: "BYTES", Shape: []int64{-1}}}}
				for _, o := range outputs {
					req.Outputs = append(req.Outputs, &oippb.ModelInferRequest_InferRequestedOutputTensor{Name: o})
				}
				if raw {
					req.RawInputContents = [][]byte{protocol.AppendBytesTensor(nil, texts)}
				} else {
					req.Inputs[0].Contents = &oippb.InferTensorContents{}
					for _, s := range texts {
						req.Inputs[0].Contents.BytesContents = append(req.Inputs[0].Contents.BytesContents, []byte(s))
					}
				}
				resp, err := c.ModelInfer(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.GetId() != "id-1" || resp.GetModelName() != model || len(resp.GetOutputs()) != len(outputs) {
					t.Fatalf("response %v", resp)
				}
				if raw != (len(resp.GetRawOutputContents()) == len(outputs)) {
					t.Fatalf("raw %v but %d raw outputs", raw, len(resp.GetRawOutputContents()))
				}
				for i, o := range resp.GetOutputs() {
					w := want.Outputs[i]
					if o.GetName() != w.Name || o.GetDatatype() != w.Datatype || dataJSON(t, o.GetShape()) != dataJSON(t, w.Shape) {
						t.Fatalf("output %d: %v, want %+v", i, o, w)
					}
					var got any
					n := int64(1)
					for _, d := range o.GetShape() {
						n *= d
					}
					switch {
					case raw && o.GetDatatype() == "BYTES":
						got, err = protocol.DecodeBytesTensor(resp.GetRawOutputContents()[i], n)
					case raw && o.GetDatatype() == "INT64":
						got, err = protocol.DecodeINT64(resp.GetRawOutputContents()[i], n)
					case raw:
						var f []float32
						f, err = protocol.DecodeFP32(resp.GetRawOutputContents()[i], n)
						got = protocol.FP32(f)
					case o.GetDatatype() == "BYTES":
						var s []string
						for _, b := range o.GetContents().GetBytesContents() {
							s = append(s, string(b))
						}
						got = s
					case o.GetDatatype() == "INT64":
						got = o.GetContents().GetInt64Contents()
					default:
						got = protocol.FP32(o.GetContents().GetFp32Contents())
					}
					if err != nil {
						t.Fatal(err)
					}
					if g, w := dataJSON(t, got), dataJSON(t, w.Data); g != w {
						t.Errorf("output %s: gRPC %s, HTTP %s", o.GetName(), g, w)
					}
				}
			})
		}
	}
}

func TestGRPCMetadataReadinessAndErrors(t *testing.T) {
	srv := newServer(t)
	conn := serveGRPC(t, srv)
	c := oippb.NewGRPCInferenceServiceClient(conn)
	ctx := context.Background()
	if r, err := c.ServerLive(ctx, &oippb.ServerLiveRequest{}); err != nil || !r.GetLive() {
		t.Fatalf("live %v %v", r, err)
	}
	if r, err := c.ServerReady(ctx, &oippb.ServerReadyRequest{}); err != nil || !r.GetReady() {
		t.Fatalf("ready %v %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &oippb.ModelReadyRequest{Name: "bert", Version: "3"}); err != nil || !r.GetReady() {
		t.Fatalf("model ready %v %v", r, err)
	}
	md, err := c.ModelMetadata(ctx, &oippb.ModelMetadataRequest{Name: "bert"})
	if err != nil || md.GetName() != "bert" || !slices.Equal(md.GetVersions(), []string{"3"}) || md.GetInputs()[0].GetDatatype() != "BYTES" {
		t.Fatalf("metadata %v %v", md, err)
	}
	sm, err := c.ServerMetadata(ctx, &oippb.ServerMetadataRequest{})
	if err != nil || sm.GetName() != "chorus" || sm.GetVersion() != "test" {
		t.Fatalf("server metadata %v %v", sm, err)
	}
	h := healthpb.NewHealthClient(conn)
	if r, err := h.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v %v", r, err)
	}
	one := []*oippb.ModelInferRequest_InferInputTensor{{Name: "t", Datatype: "BYTES", Shape: []int64{1}, Contents: &oippb.InferTensorContents{BytesContents: [][]byte{[]byte("a")}}}}
	for name, tc := range map[string]struct {
		call func() error
		code codes.Code
		msg  string
	}{
		"unknown model ready": {func() error { _, err := c.ModelReady(ctx, &oippb.ModelReadyRequest{Name: "nope"}); return err }, codes.NotFound, `model not found: "nope"`},
		"unknown model infer": {func() error {
			_, err := c.ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: "nope", Inputs: one})
			return err
		}, codes.NotFound, "model not found"},
		"unknown version": {func() error {
			_, err := c.ModelMetadata(ctx, &oippb.ModelMetadataRequest{Name: "bert", Version: "9"})
			return err
		}, codes.NotFound, `no version "9"`},
		"shape mismatch": {func() error {
			_, err := c.ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: "distilbert", Inputs: []*oippb.ModelInferRequest_InferInputTensor{{Name: "t", Datatype: "BYTES", Shape: []int64{2},
				Contents: &oippb.InferTensorContents{BytesContents: [][]byte{[]byte("a")}}}}})
			return err
		}, codes.InvalidArgument, "holds 2 elements, data has 1"},
		"lying raw length": {func() error {
			_, err := c.ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: "distilbert", Inputs: []*oippb.ModelInferRequest_InferInputTensor{{Name: "t", Datatype: "BYTES", Shape: []int64{1}}},
				RawInputContents: [][]byte{{0xff, 0xff, 0xff, 0x7f, 'a'}}})
			return err
		}, codes.InvalidArgument, "claims"},
		"FP32 input": {func() error {
			_, err := c.ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: "distilbert", Inputs: []*oippb.ModelInferRequest_InferInputTensor{{Name: "t", Datatype: "FP32", Shape: []int64{1}}}})
			return err
		}, codes.InvalidArgument, "want \"BYTES\""},
		"too many texts": {func() error {
			_, err := c.ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: "distilbert", Inputs: []*oippb.ModelInferRequest_InferInputTensor{{Name: "t", Datatype: "BYTES", Shape: []int64{-1}}},
				RawInputContents: [][]byte{protocol.AppendBytesTensor(nil, strings.Split("abcdefghij", ""))}})
			return err
		}, codes.ResourceExhausted, "the limit is 8"},
		"unknown output": {func() error {
			_, err := c.ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: "distilbert", Inputs: one,
				Outputs: []*oippb.ModelInferRequest_InferRequestedOutputTensor{{Name: "nope"}}})
			return err
		}, codes.InvalidArgument, `unknown output "nope"`},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.call()
			if st, _ := status.FromError(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
	srv.SetReady(false)
	if r, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: "inference.GRPCInferenceService"}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health while draining %v %v", r, err)
	}
	if r, err := c.ModelReady(ctx, &oippb.ModelReadyRequest{Name: "bert"}); err != nil || r.GetReady() {
		t.Fatalf("model ready while draining %v %v", r, err)
	}
}

// API keys guard the model RPCs over gRPC as over HTTP, through the
// "authorization" metadata; probes stay open.
func TestGRPCAuth(t *testing.T) {
	srv := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: testLimits,
		Auth: gateway.NewAuth([]gateway.APIKey{{Name: "k", Hash: gateway.HashKey("s3cret"), Models: []string{"distilbert"}}})})
	reg := newServer(t).SetRegistry(nil)
	srv.SetRegistry(reg)
	srv.SetReady(true)
	c := oippb.NewGRPCInferenceServiceClient(serveGRPC(t, srv))
	ctx := context.Background()
	if _, err := c.ServerReady(ctx, &oippb.ServerReadyRequest{}); err != nil {
		t.Fatalf("probe needs no key: %v", err)
	}
	req := &oippb.ModelReadyRequest{Name: "distilbert"}
	if _, err := c.ModelReady(ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no key: %v, want Unauthenticated", err)
	}
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	if r, err := c.ModelReady(authed, req); err != nil || !r.GetReady() {
		t.Fatalf("with key: %v %v", r, err)
	}
	if _, err := c.ModelReady(authed, &oippb.ModelReadyRequest{Name: "raw"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("other model: %v, want PermissionDenied", err)
	}
}

// Binary tensor data over HTTP, as tritonclient and the kserve SDK send it
// by default, answers what JSON does; binary outputs come back when asked.
func TestV2BinaryHTTP(t *testing.T) {
	srv := newServer(t)
	outputs := []string{protocol.OutputDefault, protocol.OutputLabel, protocol.OutputLogits}
	want := v2JSON(t, srv, "distilbert-probs", outputs...)
	bin := protocol.AppendBytesTensor(nil, texts)
	head, _ := json.Marshal(map[string]any{
		"inputs":     []map[string]any{{"name": "input-0", "shape": []int{len(texts), 1}, "datatype": "BYTES", "parameters": map[string]any{"binary_data_size": len(bin)}}},
		"outputs":    []map[string]any{{"name": outputs[0]}, {"name": outputs[1], "parameters": map[string]any{"binary_data": false}}, {"name": outputs[2]}},
		"parameters": map[string]any{"binary_data_output": true},
	})
	w := doH(srv, "POST", "/v2/models/distilbert-probs/infer", string(head)+string(bin),
		map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(head)), "Content-Type": "application/octet-stream"})
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	n, err := strconv.Atoi(w.Header().Get("Inference-Header-Content-Length"))
	if err != nil {
		t.Fatalf("no Inference-Header-Content-Length in the answer: %v", err)
	}
	body := w.Body.Bytes()
	var resp protocol.InferResponse
	if err := json.Unmarshal(body[:n], &resp); err != nil {
		t.Fatal(err)
	}
	rest := body[n:]
	for i, o := range resp.Outputs {
		if i == 1 {
			if dataJSON(t, o.Data) != dataJSON(t, want.Outputs[1].Data) || o.Parameters["binary_data_size"] != nil {
				t.Fatalf("JSON output %v, want %v", o, want.Outputs[1])
			}
			continue
		}
		size := int(o.Parameters["binary_data_size"].(float64))
		var got any
		if o.Datatype == "BYTES" {
			got, err = protocol.DecodeBytesTensor(rest[:size], int64(len(texts)))
		} else {
			var f []float32
			f, err = protocol.DecodeFP32(rest[:size], int64(len(texts)*2))
			got = protocol.FP32(f)
		}
		if err != nil || dataJSON(t, got) != dataJSON(t, want.Outputs[i].Data) {
			t.Fatalf("binary output %s: %v (%v), want %v", o.Name, got, err, want.Outputs[i].Data)
		}
		rest = rest[size:]
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes left over", len(rest))
	}
	// A lying header is a 400, not a crash or a large allocation.
	w = doH(srv, "POST", "/v2/models/distilbert-probs/infer", string(head)+string(bin),
		map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(head) + len(bin) + 1)})
	if w.Code != 400 {
		t.Fatalf("lying header: %d %s", w.Code, w.Body)
	}
}

// gRPC calls are counted and traced as HTTP requests are: chorus_requests_total
// with protocol="grpc" and the gRPC code, and a server span continuing the
// caller's trace from the traceparent metadata.
func TestGRPCMetricsAndTraces(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics, err := gateway.NewMetrics(reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	srv := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: testLimits,
		Metrics: metrics, Tracer: tp})
	srv.SetRegistry(newServer(t).SetRegistry(nil))
	srv.SetReady(true)
	c := oippb.NewGRPCInferenceServiceClient(serveGRPC(t, srv))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	one := []*oippb.ModelInferRequest_InferInputTensor{{Name: "t", Datatype: "BYTES", Shape: []int64{1}, Contents: &oippb.InferTensorContents{BytesContents: [][]byte{[]byte("a")}}}}
	if _, err := c.ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: "distilbert", Inputs: one}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: "nope", Inputs: one}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown model: %v", err)
	}
	method := oippb.GRPCInferenceService_ModelInfer_FullMethodName
	if v := testutil.ToFloat64(metrics.RequestsCounter("distilbert", "grpc", method, "OK")); v != 1 {
		t.Errorf("OK calls counted %v, want 1", v)
	}
	if v := testutil.ToFloat64(metrics.RequestsCounter("unknown", "grpc", method, "NotFound")); v != 1 {
		t.Errorf("NotFound calls counted %v, want 1", v)
	}
	var found bool
	for _, s := range rec.Ended() {
		if s.Name() == method && s.SpanContext().TraceID().String() == traceID {
			found = true
		}
	}
	if !found {
		t.Errorf("no %s span in trace %s", method, traceID)
	}
}

// gatePredictor holds every Predict until released: a request provably in
// flight, without timing.
type gatePredictor struct {
	entered, release chan struct{}
}

func (g *gatePredictor) Predict(ctx context.Context, texts []string) (protocol.Logits, error) {
	g.entered <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := make(protocol.Logits, len(texts))
	for i := range out {
		out[i] = []float32{0, 1}
	}
	return out, nil
}
func (g *gatePredictor) Metadata() protocol.ModelMetadata {
	return protocol.ModelMetadata{Labels: []string{"a", "b"}, Fingerprint: "gate", MaxLength: 8}
}
func (g *gatePredictor) Close() error { return nil }

// HTTP and gRPC share one in-flight bound: with one slot taken by an HTTP
// request, a gRPC call is refused at once (Unavailable), and the HTTP
// request still completes.
func TestGRPCSharesInFlightBound(t *testing.T) {
	gate := &gatePredictor{entered: make(chan struct{}, 1), release: make(chan struct{})}
	reg, err := gateway.NewRegistry([]gateway.Servable{newModel(t, "slow", "", gateway.ModeLabel, gate)})
	if err != nil {
		t.Fatal(err)
	}
	limits := testLimits
	limits.MaxInFlight = 1
	srv := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: limits,
		Cache: gateway.CacheOptions{}})
	srv.SetRegistry(reg)
	srv.SetReady(true)
	c := oippb.NewGRPCInferenceServiceClient(serveGRPC(t, srv))
	done := make(chan int)
	go func() { done <- do(srv, "POST", "/v2/models/slow/infer", seedV2).Code }()
	<-gate.entered
	_, err = c.ModelInfer(context.Background(), &oippb.ModelInferRequest{ModelName: "slow",
		Inputs: []*oippb.ModelInferRequest_InferInputTensor{{Name: "t", Datatype: "BYTES", Shape: []int64{1}, Contents: &oippb.InferTensorContents{BytesContents: [][]byte{[]byte("a")}}}}})
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "in flight") {
		t.Fatalf("gRPC with the slot taken: %v, want Unavailable (in flight)", err)
	}
	close(gate.release)
	if code := <-done; code != 200 {
		t.Fatalf("HTTP request: %d", code)
	}
}
