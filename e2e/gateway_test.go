package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/internal/loadgen"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
)

// predictorYAML serves the two fixture models with typed outputs.
func predictorYAML(t *testing.T) string {
	t.Helper()
	return predictorYAMLFor(t)
}

func predictorYAMLFor(t testing.TB) string {
	t.Helper()
	root := proctest.Root()
	path := filepath.Join(t.TempDir(), "predictor.yaml")
	cfg := fmt.Sprintf(`models:
  - name: sst2
    replicas: [{type: onnx, model_dir: %q, intra_op_threads: 1}]
  - name: sentiment3
    replicas: [{type: onnx, model_dir: %q, intra_op_threads: 1}]
`, filepath.Join(root, "testdata/models/sst2-tiny-a"), filepath.Join(root, "testdata/models/sentiment3-tiny"))
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func startPredictor(t *testing.T, cfg string, port int) *proctest.Process {
	t.Helper()
	p := proctest.StartOnPort(t, port, nil, proctest.Chorus(t), "serve", "--config", cfg, "--http_port", "{port}")
	p.WaitReady("/v2/health/ready", 30*time.Second)
	return p
}

// hangingServer accepts connections and never answers.
func hangingServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + l.Addr().String()
}

type cluster struct {
	gateway    *process
	predictors []*proctest.Process
	predCfg    string
	ref        map[string]backendtest.Reference
}

// startCluster runs three Chorus predictors, KServe's Python ModelServer
// (when CHORUS_KSERVE_PYTHON is set) and a gateway in front of them.
func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{predCfg: predictorYAML(t), ref: map[string]backendtest.Reference{
		"sst2": reference(t, "testdata/models/sst2-tiny-a"), "sentiment3": reference(t, "testdata/models/sentiment3-tiny")}}
	for range 3 {
		c.predictors = append(c.predictors, startPredictor(t, c.predCfg, proctest.FreePort(t)))
	}
	u := func(i int) string { return c.predictors[i].URL }
	python := ""
	if py := os.Getenv("CHORUS_KSERVE_PYTHON"); py != "" {
		kp := proctest.StartOnPort(t, proctest.FreePort(t), nil, py, "scripts/pyclient/kserve_predictor.py", "--model_name", "sst2",
			"--model_dir", "testdata/models/sst2-tiny-a", "--disable_postprocess", "--http_port", "{port}")
		kp.WaitReady("/v2/models/sst2/ready", 60*time.Second)
		python = fmt.Sprintf("      - {type: kserve, url: %q, protocol: v2, logits: kserve}\n", kp.URL)
	} else {
		t.Log("CHORUS_KSERVE_PYTHON unset: no KServe Python replica in this run")
	}
	pool := `    pool:
      health: {interval: 200ms, timeout: 300ms, fall: 1, rise: 1}
      ejection: {after: 1, base: 200ms, max: 1s}
`
	cfg := fmt.Sprintf(`models:
  - name: sst2
    labels: [NEGATIVE, POSITIVE]
%s    replicas:
      - {type: kserve, url: %q, protocol: v2, logits: tensor}
      - {type: kserve, url: %q, protocol: v1, logits: tensor}
      - {type: kserve, url: %q, protocol: v2, logits: tensor}
%s  - name: sentiment3
    labels: [NEGATIVE, NEUTRAL, POSITIVE]
%s    replicas:
      - {type: kserve, url: %q, logits: tensor}
      - {type: kserve, url: %q, logits: tensor}
  - name: hangs
    labels: [NEGATIVE, POSITIVE]
    pool: {policy: round_robin, budget: 5s, health: {interval: -1s}}
    replicas:
      - {type: kserve, url: %q, model: sst2, timeout: 300ms, logits: tensor}
      - {type: kserve, url: %q, model: sst2, timeout: 300ms, logits: tensor}
`, pool, u(0), u(1), u(2), python, pool, u(1), u(2), hangingServer(t), u(0))
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c.gateway = start(t, "serve", "--config", path)
	c.gateway.waitReady(30 * time.Second)
	return c
}

var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}

// infer asks the gateway for the logits of texts over V2.
func infer(gw, model string, texts []string) (int, [][]float32, string, error) {
	req, err := protocol.TextRequest("", texts, protocol.OutputLogits)
	if err != nil {
		return 0, nil, "", err
	}
	body, _ := json.Marshal(req)
	resp, err := client.Post(gw+"/v2/models/"+model+"/infer", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, "", fmt.Errorf("read: %w", err)
	}
	out, err := protocol.DecodeResponse(data)
	if err != nil {
		return resp.StatusCode, nil, "", fmt.Errorf("decode: %w", err)
	}
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil, out.Error, nil
	}
	o, err := out.Output(protocol.OutputLogits)
	if err != nil {
		return 200, nil, "", err
	}
	rows, err := o.Rows()
	return 200, rows, "", err
}

func (c *cluster) check(t *testing.T, model string, rows [][]float32, idx []int) error {
	for i, row := range rows {
		if d := backendtest.MaxAbsDiff(row, c.ref[model].Texts[idx[i]].Logits); d > backendtest.RefTolerance {
			return fmt.Errorf("%s text %d: logits off by %.2g", model, idx[i], d)
		}
	}
	return nil
}

func TestGateway(t *testing.T) {
	c := startCluster(t)
	gw := c.gateway.URL

	t.Run("AnswersEqualReference", func(t *testing.T) {
		for _, model := range []string{"sst2", "sentiment3"} {
			ref := c.ref[model]
			idx := make([]int, len(ref.Texts))
			for i := range idx {
				idx[i] = i
			}
			for range 6 { // every replica in turn
				status, rows, msg, err := infer(gw, model, ref.TextList())
				if err != nil || status != 200 {
					t.Fatalf("%s: %d %s %v", model, status, msg, err)
				}
				if err := c.check(t, model, rows, idx); err != nil {
					t.Fatal(err)
				}
			}
			status, body := post(t, gw+"/v1/models/"+model+":predict", `{"instances": ["Hello, my dog is cute"], "parameters": {"output": "logits"}}`)
			var v1 struct{ Predictions [][]float32 }
			if status != 200 || json.Unmarshal(body, &v1) != nil || c.check(t, model, v1.Predictions, []int{0}) != nil {
				t.Fatalf("%s V1: %d %s", model, status, body)
			}
		}
	})

	t.Run("HangingReplica", func(t *testing.T) {
		for range 4 { // round robin: half of these land on the hanging replica first
			status, rows, msg, err := infer(gw, "hangs", []string{"Hello, my dog is cute"})
			if err != nil || status != 200 || c.check(t, "sst2", rows, []int{0}) != nil {
				t.Fatalf("hanging replica: %d %s %v", status, msg, err)
			}
		}
	})

	t.Run("KillOneReplicaUnderLoad", func(t *testing.T) {
		const total, clients = 2000, 32
		var next, done, failed atomic.Int64
		lat := make([]time.Duration, total)
		var firstErr atomic.Value
		killed := make(chan struct{})
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= total {
						return
					}
					ti := i % len(c.ref["sst2"].Texts)
					t0 := time.Now()
					status, rows, msg, err := infer(gw, "sst2", []string{c.ref["sst2"].Texts[ti].Text})
					lat[i] = time.Since(t0)
					if err == nil && status == 200 {
						err = c.check(t, "sst2", rows, []int{ti})
					} else if err == nil {
						err = fmt.Errorf("status %d: %s", status, msg)
					}
					if err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
					if done.Add(1) == total/4 {
						close(killed)
					}
				}
			}()
		}
		<-killed
		c.predictors[0].Kill() // SIGKILL mid-run
		wg.Wait()
		t.Logf("kill-a-replica run: %d requests, %d clients, %d failed, p50 %v, p99 %v", total, clients, failed.Load(), loadgen.Quantile(lat, 0.5), loadgen.Quantile(lat, 0.99))
		if failed.Load() != 0 {
			t.Fatalf("%d requests failed; first: %v", failed.Load(), firstErr.Load())
		}
	})

	t.Run("KillAllReplicasOfOneModel", func(t *testing.T) {
		// sentiment3 lives on predictors 1 and 2; sst2 also on the KServe
		// Python replica (or nowhere else when it is absent).
		port := c.predictors[1].Port
		c.predictors[1].Kill()
		c.predictors[2].Kill()
		var worst time.Duration
		for range 20 {
			t0 := time.Now()
			status, _, msg, err := infer(gw, "sentiment3", []string{"x"})
			d := time.Since(t0)
			worst = max(worst, d)
			if err != nil || status != http.StatusServiceUnavailable || msg == "" {
				t.Fatalf("every replica dead: %d %q %v, want 503 JSON", status, msg, err)
			}
			if strings.Contains(msg, "127.0.0.1") {
				t.Fatalf("503 body leaks a backend address: %q", msg)
			}
		}
		t.Logf("all replicas dead: 20 requests answered 503 JSON, slowest %v", worst)
		if worst > 100*time.Millisecond {
			t.Errorf("503 took %v, want within 100ms", worst)
		}
		resp, err := client.Get(gw + "/v2/models/sentiment3/ready")
		if err == nil {
			resp.Body.Close()
		}
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("sentiment3 ready with no replica alive: %v %v", resp.StatusCode, err)
		}
		if os.Getenv("CHORUS_KSERVE_PYTHON") != "" {
			if status, _, msg, err := infer(gw, "sst2", []string{"x"}); status != 200 {
				t.Errorf("sst2 (on the KServe Python replica) affected: %d %s %v", status, msg, err)
			}
		}

		// Restart one: traffic resumes within 2 s of its readiness.
		startPredictor(t, c.predCfg, port)
		t0 := time.Now()
		proctest.Eventually(t, 10*time.Second, "traffic after the restart", func() bool {
			status, _, _, _ := infer(gw, "sentiment3", []string{"x"})
			return status == 200
		})
		t.Logf("traffic resumed %v after the restarted replica was ready", time.Since(t0))
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("traffic resumed after %v, want within 2s", d)
		}
	})

	if code := c.gateway.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("gateway exit %d", code)
	}
}
