package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chorusml/chorus/internal/loadgen"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/protocol/oippb"
)

// BenchmarkTransports runs the same bounded load (8 clients, 16-text V2
// requests for label and logits) as JSON, as binary tensor data and over
// gRPC against one Chorus serving the tiny fixture, on the cache-hit path
// (warm cache) and the model path (cache off), and reports each one's
// requests per second and its ratio to JSON. The fuller version, in
// BENCHMARKS.md, is cmd/chorus-bench's transports section.
//
//	go test -run '^$' -bench Transports -benchtime 2000x ./e2e
func BenchmarkTransports(b *testing.B) {
	dir := filepath.Join(proctest.Root(), "testdata/models/sst2-tiny-a")
	cfg := filepath.Join(b.TempDir(), "chorus.yaml")
	yaml := fmt.Sprintf("models:\n  - name: hit\n    replicas: [{type: onnx, model_dir: %q}]\n"+
		"  - name: model\n    cache: {enabled: false}\n    replicas: [{type: onnx, model_dir: %q}]\n", dir, dir)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	p := proctest.Start(b, nil, proctest.Chorus(b), "serve", "--config", cfg, "--http_port", "{port}", "--grpc_port", "{grpc_port}", "--log-level", "warn")
	p.WaitReady("/v2/health/ready", 30*time.Second)
	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(p.GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	gc := oippb.NewGRPCInferenceServiceClient(conn)
	texts := func(i int) []string {
		out := make([]string, 16)
		for j := range out {
			out[j] = fmt.Sprintf("review %d: the film was surprisingly good", (i*16+j)%200)
		}
		return out
	}
	outputs := []map[string]any{{"name": "label"}, {"name": "logits"}}
	jsonReq := func(model string) func(int) (loadgen.Request, error) {
		return func(i int) (loadgen.Request, error) {
			body, err := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "t", "shape": []int{16}, "datatype": "BYTES", "data": texts(i)}}, "outputs": outputs})
			return loadgen.Post(p.URL+"/v2/models/"+model+"/infer", "application/json", body), err
		}
	}
	binReq := func(model string) func(int) (loadgen.Request, error) {
		return func(i int) (loadgen.Request, error) {
			bin := protocol.AppendBytesTensor(nil, texts(i))
			head, _ := json.Marshal(map[string]any{"inputs": []map[string]any{{"name": "t", "shape": []int{16}, "datatype": "BYTES",
				"parameters": map[string]any{"binary_data_size": len(bin)}}}, "outputs": outputs, "parameters": map[string]any{"binary_data_output": true}})
			req := loadgen.Post(p.URL+"/v2/models/"+model+"/infer", "application/octet-stream", append(head, bin...))
			req.Header.Set(protocol.HeaderInferenceLength, strconv.Itoa(len(head)))
			return req, nil
		}
	}
	grpcCall := func(model string) func(context.Context, int) error {
		return func(ctx context.Context, i int) error {
			_, err := gc.ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: model,
				Inputs:           []*oippb.ModelInferRequest_InferInputTensor{{Name: "t", Datatype: "BYTES", Shape: []int64{16}}},
				Outputs:          []*oippb.ModelInferRequest_InferRequestedOutputTensor{{Name: "label"}, {Name: "logits"}},
				RawInputContents: [][]byte{protocol.AppendBytesTensor(nil, texts(i))}})
			return err
		}
	}
	ctx := context.Background()
	loadgen.Run(ctx, 20, 8, jsonReq("hit")) // warm: every text cached
	b.ResetTimer()
	for _, model := range []string{"hit", "model"} {
		js := loadgen.Run(ctx, b.N, 8, jsonReq(model))
		bin := loadgen.Run(ctx, b.N, 8, binReq(model))
		g := loadgen.RunFunc(ctx, b.N, 8, grpcCall(model))
		for _, r := range []loadgen.Result{js, bin, g} {
			if r.Errors > 0 {
				b.Fatalf("%s: %d errors, first: %s", model, r.Errors, r.FirstError)
			}
		}
		b.ReportMetric(js.RPS, model+"-json-req/s")
		b.ReportMetric(bin.RPS/js.RPS, model+"-binary/json")
		b.ReportMetric(g.RPS/js.RPS, model+"-grpc/json")
	}
}
