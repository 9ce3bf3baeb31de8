package oipgrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/backends/oipgrpc"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
)

const fixture = "testdata/models/sst2-tiny-a"

var labels = []string{"NEGATIVE", "POSITIVE"}

func reference(t *testing.T) backendtest.Reference {
	return backendtest.FixtureReference(t, proctest.Root(), fixture)
}

func backend(t *testing.T, cfg oipgrpc.Config) *oipgrpc.Backend {
	t.Helper()
	if cfg.Labels == nil {
		cfg.Labels = labels
	}
	b, err := oipgrpc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// waitReady polls the remote's ModelReady until it answers ready.
func waitReady(t *testing.T, b *oipgrpc.Backend) {
	t.Helper()
	proctest.Eventually(t, 60*time.Second, "the remote to be ready", func() bool { return b.Ready(context.Background()) == nil })
}

// A Chorus predictor process, over gRPC: typed FP32 logits (tensor) and
// KServe's raw-logit strings (kserve).
func TestContractAgainstChorus(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "predictor.yaml")
	dir := filepath.Join(proctest.Root(), fixture)
	yaml := fmt.Sprintf(`models:
  - name: tensor
    replicas: [{type: onnx, model_dir: %q, intra_op_threads: 1}]
  - name: raw
    disable_postprocess: true
    replicas: [{type: onnx, model_dir: %q, intra_op_threads: 1}]
`, dir, dir)
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := proctest.Start(t, nil, proctest.Chorus(t), "serve", "--config", cfg, "--http_port", "{port}", "--grpc_port", "{grpc_port}")
	p.WaitReady("/v2/health/ready", 30*time.Second)
	ref := reference(t)
	for _, c := range []struct{ logits, model string }{{oipgrpc.LogitsTensor, "tensor"}, {oipgrpc.LogitsKServe, "raw"}} {
		t.Run(c.logits, func(t *testing.T) {
			b := backend(t, oipgrpc.Config{Target: "127.0.0.1:" + strconv.Itoa(p.GRPCPort), Model: c.model, Logits: c.logits})
			if err := b.Ready(context.Background()); err != nil {
				t.Fatal(err)
			}
			backendtest.Run(t, b, ref)
		})
	}
	t.Run("unknown model", func(t *testing.T) {
		b := backend(t, oipgrpc.Config{Target: "127.0.0.1:" + strconv.Itoa(p.GRPCPort), Model: "nope", Logits: oipgrpc.LogitsTensor})
		if _, err := b.Predict(context.Background(), []string{"a"}); !errors.Is(err, protocol.ErrBadGateway) || !strings.Contains(err.Error(), "NotFound") {
			t.Fatalf("err %v, want ErrBadGateway naming NotFound", err)
		}
		if err := b.Ready(context.Background()); err == nil {
			t.Fatal("unknown model reported ready")
		}
	})
	t.Run("labels asked of a raw-logit model", func(t *testing.T) {
		b := backend(t, oipgrpc.Config{Target: "127.0.0.1:" + strconv.Itoa(p.GRPCPort), Model: "tensor", Logits: oipgrpc.LogitsKServe})
		if _, err := b.Predict(context.Background(), []string{"a"}); !errors.Is(err, protocol.ErrBadGateway) || !strings.Contains(err.Error(), "--return_raw_logits") {
			t.Fatalf("err %v, want ErrBadGateway naming --return_raw_logits", err)
		}
	})
}

// KServe's own Python ModelServer over gRPC, with KServe's raw-logit
// output. Needs CHORUS_KSERVE_PYTHON (`make test` sets it).
func TestContractAgainstKServePython(t *testing.T) {
	py := os.Getenv("CHORUS_KSERVE_PYTHON")
	if py == "" {
		t.Skip("CHORUS_KSERVE_PYTHON is unset: run `make test`, or point it at a python with scripts/pyclient/requirements.txt")
	}
	p := proctest.StartOnPort(t, proctest.FreePort(t), nil, py, "scripts/pyclient/kserve_predictor.py", "--model_name", "sst2",
		"--model_dir", fixture, "--return_raw_logits", "--http_port", "{port}", "--grpc_port", "{grpc_port}")
	b := backend(t, oipgrpc.Config{Target: "127.0.0.1:" + strconv.Itoa(p.GRPCPort), Model: "sst2", Logits: oipgrpc.LogitsKServe})
	waitReady(t, b)
	backendtest.Run(t, b, reference(t))
}

// A closed port is unavailable (another replica may serve), not a bad
// gateway; a cancelled caller gets its own context error back.
func TestClosedPortAndCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b := backend(t, oipgrpc.Config{Target: addr, Model: "m", Logits: oipgrpc.LogitsTensor, Timeout: 5 * time.Second})
	if _, err := b.Predict(context.Background(), []string{"a"}); !errors.Is(err, protocol.ErrUnavailable) {
		t.Fatalf("closed port: %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.Predict(ctx, []string{"a"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want context.Canceled", err)
	}
}
