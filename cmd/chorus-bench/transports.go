package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chorusml/chorus/internal/loadgen"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/protocol/oippb"
)

// batchTexts is how many texts one transport-benchmark request carries: the
// encodings differ in how tensors travel, so requests carry some.
const batchTexts = 16

func batchOf(i int) []string {
	out := make([]string, batchTexts)
	for j := range out {
		out[j] = shortTexts[(i*batchTexts+j)%len(shortTexts)]
	}
	return out
}

// transportOutputs are what every transport-benchmark request asks for: the
// labels (INT64) and the logits (FP32 [n, k]).
var transportOutputs = []string{protocol.OutputLabel, protocol.OutputLogits}

// v2JSON is the i-th V2 request as plain JSON.
func v2JSON(url, model string) func(i int) (loadgen.Request, error) {
	return func(i int) (loadgen.Request, error) {
		body, err := json.Marshal(map[string]any{
			"inputs":  []map[string]any{{"name": "input-0", "shape": []int{batchTexts}, "datatype": "BYTES", "data": batchOf(i)}},
			"outputs": []map[string]any{{"name": transportOutputs[0]}, {"name": transportOutputs[1]}},
		})
		return loadgen.Post(url+"/v2/models/"+model+"/infer", "application/json", body), err
	}
}

// v2Binary is the i-th V2 request with binary tensor data both ways, as
// tritonclient sends it by default.
func v2Binary(url, model string) func(i int) (loadgen.Request, error) {
	return func(i int) (loadgen.Request, error) {
		bin := protocol.AppendBytesTensor(nil, batchOf(i))
		head, err := json.Marshal(map[string]any{
			"inputs": []map[string]any{{"name": "input-0", "shape": []int{batchTexts}, "datatype": "BYTES",
				"parameters": map[string]any{protocol.ParamBinaryDataSize: len(bin)}}},
			"outputs":    []map[string]any{{"name": transportOutputs[0]}, {"name": transportOutputs[1]}},
			"parameters": map[string]any{protocol.ParamBinaryDataOutput: true},
		})
		req := loadgen.Post(url+"/v2/models/"+model+"/infer", "application/octet-stream", append(head, bin...))
		req.Header.Set(protocol.HeaderInferenceLength, strconv.Itoa(len(head)))
		return req, err
	}
}

// grpcInfer is the i-th request over gRPC, raw contents both ways (as
// tritonclient.grpc sends it).
func grpcInfer(c oippb.GRPCInferenceServiceClient, model string) func(ctx context.Context, i int) error {
	return func(ctx context.Context, i int) error {
		req := &oippb.ModelInferRequest{ModelName: model,
			Inputs:           []*oippb.ModelInferRequest_InferInputTensor{{Name: "input-0", Datatype: "BYTES", Shape: []int64{batchTexts}}},
			RawInputContents: [][]byte{protocol.AppendBytesTensor(nil, batchOf(i))}}
		for _, o := range transportOutputs {
			req.Outputs = append(req.Outputs, &oippb.ModelInferRequest_InferRequestedOutputTensor{Name: o})
		}
		resp, err := c.ModelInfer(ctx, req)
		if err == nil && len(resp.GetRawOutputContents()) != len(transportOutputs) {
			err = fmt.Errorf("%d raw outputs", len(resp.GetRawOutputContents()))
		}
		return err
	}
}

// transports compares JSON, binary tensor data and gRPC side by side, on
// one Chorus, on the cache-hit path (a warm cache) and the model path
// (cache off).
func (b *bench) transports() (string, error) {
	const clients = 8
	n := b.n(3000)
	dir := filepath.Join(b.o.models, "tiny")
	cfg, err := b.chorusConfig(fmt.Sprintf("models:\n  - name: hit\n    replicas: [{type: onnx, model_dir: %q}]\n"+
		"  - name: model\n    cache: {enabled: false}\n    replicas: [{type: onnx, model_dir: %q, batching: {max_batch_size: 64, max_queue_delay: 2ms}}]\n", dir, dir))
	if err != nil {
		return "", err
	}
	ch, url, err := b.start("/v2/health/ready", b.o.chorus, "serve", "--config", cfg, "--http_port", "{port}", "--grpc_port", "{grpc_port}", "--log-level", "warn")
	if err != nil {
		return "", err
	}
	defer b.stop(ch)
	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(b.grpcPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	gc := oippb.NewGRPCInferenceServiceClient(conn)
	var out strings.Builder
	fmt.Fprintf(&out, "\n## Transports: JSON, binary tensor data and gRPC\n\n"+
		"One Chorus, the tiny model, %d clients, %d requests each of %d texts asking for `label` (INT64) and `logits` (FP32 [n, k]): "+
		"OIP V2 as JSON over HTTP/1.1, as JSON plus binary tensor data both ways (`Inference-Header-Content-Length`, as tritonclient "+
		"and the kserve SDK send by default), and over gRPC with raw contents (one HTTP/2 connection shared by the clients). "+
		"Cache-hit path: every text in the warm logits cache; model path: cache off, dynamic batching on.\n", clients, n, batchTexts)
	for _, path := range []struct{ model, what string }{{"hit", "Cache-hit path"}, {"model", "Model path"}} {
		if path.model == "hit" { // warm: every text of shortTexts cached
			loadgen.Run(b.ctx, len(shortTexts)/batchTexts+1, clients, v2JSON(url, path.model))
		}
		loadgen.Run(b.ctx, 50, clients, v2Binary(url, path.model))
		loadgen.RunFunc(b.ctx, 50, clients, grpcInfer(gc, path.model))
		js := loadgen.Run(b.ctx, n, clients, v2JSON(url, path.model))
		bin := loadgen.Run(b.ctx, n, clients, v2Binary(url, path.model))
		g := loadgen.RunFunc(b.ctx, n, clients, grpcInfer(gc, path.model))
		for _, r := range []loadgen.Result{js, bin, g} {
			if r.Errors > 0 {
				return "", fmt.Errorf("transports %s: %d errors, first: %s", path.model, r.Errors, r.FirstError)
			}
		}
		fmt.Fprintf(&out, "\n### %s\n\n%s%s%s%s\n**Throughput vs JSON: binary %.2f×, gRPC %.2f×**; p50 %.2f / %.2f / %.2f ms.\n",
			path.what, tableHead, row("HTTP, JSON", js), row("HTTP, binary tensor data", bin), row("gRPC, raw contents", g),
			bin.RPS/js.RPS, g.RPS/js.RPS, ms(js.P50), ms(bin.P50), ms(g.P50))
	}
	return out.String(), nil
}

func ms(d interface{ Microseconds() int64 }) float64 { return float64(d.Microseconds()) / 1000 }
