package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/protocol/oippb"
)

// kserveRuntimeArgs are the args of KServe's Hugging Face ServingRuntime
// (config/runtimes/kserve-huggingfaceserver.yaml, kserve/kserve@aaac4e2:
// `--model_name={{.Name}}`), rendered for a model named sst2, then what
// KServe's webhook adds for a storageUri (`--model_dir=/mnt/models`, here
// the fixture the storage initializer would have put there).
var kserveRuntimeArgs = []string{"--model_name=sst2", "--model_dir=testdata/models/sst2-tiny-a"}

// kserveUserArgs are every other flag KServe's huggingfaceserver and
// ModelServer define (python/huggingfaceserver/huggingfaceserver/__main__.py
// and python/kserve/kserve/model_server.py), as an InferenceService's args
// may add them, in both of argparse's spellings (--x=v and --x v).
var kserveUserArgs = []string{
	"--model_revision=main", "--tokenizer_revision", "main", "--max_length=64", "--max_model_len=64",
	"--disable_lower_case", "--trust_remote_code", "--tensor_input_names=input_ids,attention_mask",
	"--backend=huggingface", "--return_token_type_ids", "--return_offsets_mapping", "--return_raw_logits",
	"--disable_log_requests", "--task=sequence_classification", "--max_log_len=100", "--max-log-len", "100",
	"--dtype=float32", "--workers=1", "--max_threads=4", "--max_asyncio_workers", "4", "--enable_grpc", "true",
	"--enable_docs_url=false", "--enable_latency_logging=true", "--configure_logging=false",
	"--log_config_file=/dev/null", "--access_log_format=%s", "--event-loop=auto", "--timeout-keep-alive=5",
	"--predictor_host=localhost", "--protocol=v2", "--predictor_protocol=v1", "--predictor_use_ssl=false",
	"--predictor_request_timeout_seconds=60", "--predictor_request_retries=0", "--enable_predictor_health_check=false",
	"--grpc_max_send_message_length=1048576", "--grpc_max_receive_message_length=1048576",
}

// Chorus starts with the exact args of KServe's Hugging Face runtime plus
// every flag KServe's server takes: those that apply are honoured (raw
// logits, max length, cased tokenizer, gRPC), the rest logged as ignored.
func TestKServeRuntimeArgs(t *testing.T) {
	args := append(append(append([]string{}, kserveRuntimeArgs...), kserveUserArgs...), "--grpc_port", "{grpc_port}")
	p := start(t, args...)
	p.waitReady(30 * time.Second)

	// --return_raw_logits: KServe's raw-logit strings by default.
	status, body := post(t, p.URL+"/v2/models/sst2/infer", seedV2)
	var v2 protocol.InferResponse
	if status != 200 || json.Unmarshal(body, &v2) != nil || v2.Outputs[0].Datatype != "BYTES" {
		t.Fatalf("%d %s", status, body)
	}
	// --disable_lower_case: the served tokenizer is cased, so "HELLO" and
	// "hello" now differ, which an uncased model never does.
	logits := func(text string) string {
		_, b := post(t, p.URL+"/v2/models/sst2/infer", `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["`+text+`"]}],"outputs":[{"name":"logits"}]}`)
		return string(b[strings.Index(string(b), `"outputs"`):])
	}
	if logits("HELLO THERE") == logits("hello there") {
		t.Error("--disable_lower_case: cased and lowercased text give the same logits")
	}
	// gRPC is on (--enable_grpc true) at --grpc_port.
	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(p.GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ready, err := oippb.NewGRPCInferenceServiceClient(conn).ModelReady(context.Background(), &oippb.ModelReadyRequest{Name: "sst2"})
	if err != nil || !ready.GetReady() {
		t.Fatalf("gRPC model ready: %v %v", ready, err)
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	out := p.output()
	for _, flag := range []string{"--backend", "--workers", "--trust_remote_code", "--predictor_host", "--return_token_type_ids"} {
		if !strings.Contains(out, "kserve flag ignored") || !strings.Contains(out, "flag="+flag+" ") {
			t.Errorf("%s is not logged as ignored:\n%s", flag, out)
		}
	}
	for _, flag := range []string{"--disable_lower_case", "--return_raw_logits", "--max_model_len", "--dtype"} {
		if strings.Contains(out, "flag="+flag+" ") {
			t.Errorf("%s is honoured but logged as ignored", flag)
		}
	}
}

// --enable_grpc false turns gRPC off, as --grpc_port 0 does.
func TestKServeEnableGRPCFalse(t *testing.T) {
	port := proctest.FreePort(t)
	p := start(t, "--model_name=sst2", "--model_dir=testdata/models/sst2-tiny-a", "--enable_grpc", "false", "--grpc_port", strconv.Itoa(port))
	p.waitReady(30 * time.Second)
	if strings.Contains(p.output(), `protocol=grpc`) {
		t.Fatalf("gRPC listening with --enable_grpc false:\n%s", p.output())
	}
}
