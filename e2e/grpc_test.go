package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol/oippb"
)

// A gateway calls its predictor over gRPC (protocol: grpc): the answers
// are the predictor's logits, the predictor's gRPC health follows its
// readiness, and both exit 0 on SIGTERM.
func TestGatewayOverGRPC(t *testing.T) {
	pred := proctest.Start(t, nil, proctest.Chorus(t), "serve", "--config", predictorYAML(t), "--http_port", "{port}", "--grpc_port", "{grpc_port}")
	pred.WaitReady("/v2/health/ready", 30*time.Second)

	gwCfg := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(gwCfg, []byte(fmt.Sprintf(`models:
  - name: sst2
    labels: [NEGATIVE, POSITIVE]
    replicas: [{type: kserve, url: "http://127.0.0.1:%d", protocol: grpc, logits: tensor}]
`, pred.GRPCPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := start(t, "serve", "--config", gwCfg, "--grpc_port", "0")
	gw.waitReady(30 * time.Second)

	ref, err := backendtest.LoadReference(filepath.Join(proctest.Root(), "testdata/models/sst2-tiny-a", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, r := range ref.Texts[:4] {
		texts = append(texts, r.Text)
	}
	status, rows, msg, err := infer(gw.URL, "sst2", texts)
	if err != nil || status != 200 {
		t.Fatalf("%d %s %v", status, msg, err)
	}
	for i, row := range rows {
		if d := backendtest.MaxAbsDiff(row, ref.Texts[i].Logits); d > 1e-4 {
			t.Errorf("text %d: logits %v differ from the reference by %g", i, row, d)
		}
	}

	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(pred.GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("predictor health %v %v", h, err)
	}
	if code := gw.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("gateway exit %d", code)
	}
	if code := pred.Stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("predictor exit %d", code)
	}
}

// SIGTERM during a gRPC load: every call the server accepted is answered OK
// and reaches the client (client-side OKs equal the server's access log);
// the others are refused as Unavailable. Exit 0.
func TestSIGTERMUnderGRPCLoad(t *testing.T) {
	p := start(t, "serve", "--config", "configs/local.yaml", "--grpc_port", "{grpc_port}")
	p.waitReady(30 * time.Second)
	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(p.GRPCPort), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := oippb.NewGRPCInferenceServiceClient(conn)
	var sent, ok, refused, other atomic.Int64
	var firstBad atomic.Value
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := sent.Add(1)
				if i > 4000 {
					return
				}
				if i == 800 {
					p.Signal(syscall.SIGTERM)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := c.ModelInfer(ctx, &oippb.ModelInferRequest{ModelName: "distilbert",
					Inputs: []*oippb.ModelInferRequest_InferInputTensor{{Name: "t", Datatype: "BYTES", Shape: []int64{1},
						Contents: &oippb.InferTensorContents{BytesContents: [][]byte{[]byte(fmt.Sprintf("drain text %d", i%500))}}}}})
				cancel()
				switch status.Code(err) {
				case codes.OK:
					ok.Add(1)
				case codes.Unavailable:
					refused.Add(1) // not accepted: the server stopped taking calls
				default:
					other.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	wg.Wait()
	code := p.Wait(30 * time.Second)
	logged := int64(strings.Count(p.output(), "path=/inference.GRPCInferenceService/ModelInfer status=OK"))
	t.Logf("SIGTERM under gRPC load: %d OK (server logged %d), %d refused, %d otherwise; exit %d", ok.Load(), logged, refused.Load(), other.Load(), code)
	if other.Load() != 0 {
		t.Errorf("calls failed otherwise than refused: %v", firstBad.Load())
	}
	if ok.Load() != logged {
		t.Errorf("the server answered %d calls OK, the clients received %d", logged, ok.Load())
	}
	if code != 0 || !strings.Contains(p.output(), "msg=stopped") {
		t.Errorf("exit %d", code)
	}
}
