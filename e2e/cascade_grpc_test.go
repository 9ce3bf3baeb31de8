package e2e

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/protocol/oippb"
)

// checkCascadeGRPC asks cascade model over OIP gRPC (ModelInfer, texts in
// typed contents, then in raw_input_contents) for its labels, logits and
// the stage of each text, and checks them against the reference answers
// of TestCascade: each text's stage and the answering stage's calibrated
// logits and label, and the per-stage counts as OIP parameters (a string
// and an int64 per stage).
func checkCascadeGRPC(t *testing.T, port int, model string, texts, wantStage []string, want [][]float64, counts map[string]int) {
	t.Helper()
	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := oippb.NewGRPCInferenceServiceClient(conn)
	outputs := []*oippb.ModelInferRequest_InferRequestedOutputTensor{{Name: protocol.OutputLabel}, {Name: protocol.OutputLogits}, {Name: "stage"}}
	n := int64(len(texts))
	for _, raw := range []bool{false, true} {
		in := &oippb.ModelInferRequest_InferInputTensor{Name: "input-0", Datatype: "BYTES", Shape: []int64{n}}
		req := &oippb.ModelInferRequest{ModelName: model, Inputs: []*oippb.ModelInferRequest_InferInputTensor{in}, Outputs: outputs}
		if raw {
			req.RawInputContents = [][]byte{protocol.AppendBytesTensor(nil, texts)}
		} else {
			in.Contents = &oippb.InferTensorContents{}
			for _, s := range texts {
				in.Contents.BytesContents = append(in.Contents.BytesContents, []byte(s))
			}
		}
		resp, err := c.ModelInfer(context.Background(), req)
		if err != nil {
			t.Fatalf("gRPC raw=%v: %v", raw, err)
		}
		labels, logits, stages, err := cascadeGRPCOutputs(resp, raw, n)
		if err != nil {
			t.Fatalf("gRPC raw=%v: %v", raw, err)
		}
		if !slices.Equal(stages, wantStage) {
			t.Errorf("gRPC raw=%v: stages %v\nwant %v", raw, stages, wantStage)
		}
		if len(labels) != len(texts) || len(logits) != 2*len(texts) {
			t.Fatalf("gRPC raw=%v: %d labels, %d logits for %d texts", raw, len(labels), len(logits), len(texts))
		}
		for i := range want {
			if labels[i] != int64(calibration.Argmax(want[i])) {
				t.Errorf("gRPC raw=%v text %d: label %d, reference %v", raw, i, labels[i], want[i])
			}
			for j := range want[i] {
				if math.Abs(float64(logits[2*i+j])-want[i][j]) > 1e-4 {
					t.Errorf("gRPC raw=%v text %d (stage %s): logits %v, reference %v", raw, i, wantStage[i], logits[2*i:2*i+2], want[i])
				}
			}
		}
		params := resp.GetParameters()
		var parts []string
		for _, s := range []string{"a", "ens"} {
			parts = append(parts, fmt.Sprintf("%s=%d", s, counts[s]))
			if got := params["stage_"+s].GetInt64Param(); got != int64(counts[s]) {
				t.Errorf("gRPC raw=%v: parameter stage_%s = %v, want int64 %d", raw, s, params["stage_"+s], counts[s])
			}
		}
		if got, want := params["stage_counts"].GetStringParam(), parts[0]+","+parts[1]; got != want {
			t.Errorf("gRPC raw=%v: parameter stage_counts %q, want %q", raw, got, want)
		}
	}
}

// cascadeGRPCOutputs reads the label, logits and stage outputs of an
// answer to n texts, from raw_output_contents when raw, else from typed
// contents; the stage output must be BYTES [n].
func cascadeGRPCOutputs(resp *oippb.ModelInferResponse, raw bool, n int64) (labels []int64, logits []float32, stages []string, err error) {
	for i, o := range resp.GetOutputs() {
		switch o.GetName() {
		case protocol.OutputLabel:
			labels = o.GetContents().GetInt64Contents()
			if raw {
				labels, err = protocol.DecodeINT64(resp.GetRawOutputContents()[i], n)
			}
		case protocol.OutputLogits:
			logits = o.GetContents().GetFp32Contents()
			if raw {
				logits, err = protocol.DecodeFP32(resp.GetRawOutputContents()[i], 2*n)
			}
		case "stage":
			if o.GetDatatype() != "BYTES" || !slices.Equal(o.GetShape(), []int64{n}) {
				return nil, nil, nil, fmt.Errorf("stage output %s %v, want BYTES [%d]", o.GetDatatype(), o.GetShape(), n)
			}
			for _, b := range o.GetContents().GetBytesContents() {
				stages = append(stages, string(b))
			}
			if raw {
				stages, err = protocol.DecodeBytesTensor(resp.GetRawOutputContents()[i], n)
			}
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("output %s: %w", o.GetName(), err)
		}
	}
	return labels, logits, stages, nil
}
