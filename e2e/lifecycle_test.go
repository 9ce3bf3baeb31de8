package e2e

import (
	"context"
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

	"github.com/chorusml/chorus/internal/loadgen"
	"github.com/chorusml/chorus/internal/proctest"
)

func writeRegistry(t *testing.T, path string, models ...string) {
	t.Helper()
	root := proctest.Root()
	var b strings.Builder
	b.WriteString("models:\n")
	for _, m := range models {
		name, dir, _ := strings.Cut(m, "=")
		fmt.Fprintf(&b, "  - name: %s\n    replicas: [{type: onnx, model_dir: %q, batching: {max_batch_size: 16}}]\n", name, filepath.Join(root, dir))
	}
	// Write beside and rename: what editors and config management do.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func modelServed(url, name string) bool {
	resp, err := http.Get(url + "/v2/models/" + name + "/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	proctest.Eventually(t, 20*time.Second, what, cond)
}

// Reloads under a bounded load: SIGHUP with a new registry, SIGHUP with a
// broken one (kept out), then --watch picking up a file change. Not one
// request may fail.
func TestReloadUnderLoad(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "registry.yaml")
	writeRegistry(t, cfg, "distilbert=models/demo-sentiment")
	p := start(t, "serve", "--config", cfg, "--watch")
	p.waitReady(30 * time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sent atomic.Int64
	loadDone := make(chan loadgen.Result)
	go func() {
		loadDone <- loadgen.Run(ctx, 3000, 16, func(i int) (loadgen.Request, error) {
			sent.Add(1)
			return loadgen.Post(p.URL+"/v1/models/distilbert:predict", "application/json",
				fmt.Appendf(nil, `{"instances": ["reload text %d"]}`, i)), nil
		})
	}()
	waitFor(t, "load to start", func() bool { return sent.Load() > 200 })

	writeRegistry(t, cfg, "distilbert=models/demo-sentiment", "sentiment3=testdata/models/sentiment3-tiny")
	p.Signal(syscall.SIGHUP)
	waitFor(t, "sentiment3 after SIGHUP", func() bool { return modelServed(p.URL, "sentiment3") })

	if err := os.WriteFile(cfg, []byte("models:\n  - name: broken\n    replicas: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGHUP)
	waitFor(t, "the failed reload to be logged", func() bool { return strings.Contains(p.output(), "reload failed") })
	if !modelServed(p.URL, "sentiment3") || !modelServed(p.URL, "distilbert") {
		t.Fatal("a bad file replaced the registry in service")
	}

	writeRegistry(t, cfg, "distilbert=models/demo-sentiment", "bert=testdata/models/bert-tiny-tt") // --watch sees it
	waitFor(t, "bert after the file change", func() bool { return modelServed(p.URL, "bert") })
	if modelServed(p.URL, "sentiment3") {
		t.Error("sentiment3 still served after it left the registry")
	}

	res := <-loadDone
	t.Logf("reload under load: %s", res)
	if res.Errors != 0 {
		t.Fatalf("%d requests failed during reloads; first: %s", res.Errors, res.FirstError)
	}
	if code := p.stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
}

// SIGTERM during a bounded load: every request the server accepted is
// answered 200 and reaches the client (client-side 200s equal the server's
// access log); the others find the port closed. Exit 0.
func TestSIGTERMUnderLoad(t *testing.T) {
	p := start(t, "serve", "--config", "configs/local.yaml")
	p.waitReady(30 * time.Second)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 30 * time.Second}
	var sent, ok200, notOK, transport atomic.Int64
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
				resp, err := hc.Post(p.URL+"/v1/models/distilbert:predict", "application/json",
					strings.NewReader(fmt.Sprintf(`{"instances": ["drain text %d"]}`, i%500)))
				if err != nil {
					transport.Add(1) // not accepted: the listener or the idle connection was closed
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok200.Add(1)
				} else {
					notOK.Add(1)
					firstBad.CompareAndSwap(nil, resp.Status)
				}
			}
		}()
	}
	wg.Wait()
	code := p.Wait(30 * time.Second)
	logged := int64(strings.Count(p.output(), "path=/v1/models/distilbert:predict status=200"))
	t.Logf("SIGTERM under load: %d answered 200 (server logged %d), %d answered otherwise, %d not accepted; exit %d; drain %v (server log)",
		ok200.Load(), logged, notOK.Load(), transport.Load(), code, drainTime(p.output()))
	if notOK.Load() != 0 {
		t.Errorf("accepted requests answered with an error: %v", firstBad.Load())
	}
	if ok200.Load() != logged {
		t.Errorf("the server answered %d requests with 200, the clients received %d", logged, ok200.Load())
	}
	if code != 0 || !strings.Contains(p.output(), "msg=stopped") {
		t.Errorf("exit %d", code)
	}
}

// drainTime reads the drain duration from the server's "stopped" line.
func drainTime(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "msg=stopped") {
			if _, d, ok := strings.Cut(line, "drain="); ok {
				return d
			}
		}
	}
	return "?"
}

// A client that sends its headers a byte at a time cannot hold a
// connection: read_header bounds it (slowloris).
func TestSlowClientIsCutOff(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "registry.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("server: {timeouts: {read_header: 500ms}}\nmodels:\n  - name: m\n    replicas: [{type: onnx, model_dir: %q}]\n",
		filepath.Join(proctest.Root(), "testdata/models/sst2-tiny-a"))), 0o644)
	p := start(t, "serve", "--config", cfg)
	p.waitReady(30 * time.Second)
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	closed := false
	for i := range 40 {
		if _, err := conn.Write([]byte("GET /v2/health/live HTTP/1.1\r\nX-Slow: "[i%10 : i%10+1])); err != nil {
			closed = true
			break
		}
		time.Sleep(100 * time.Millisecond) // the slow client's pace
	}
	if !closed {
		// A write may still succeed into the socket buffer: the read says.
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 512)
		_, err := conn.Read(buf)
		closed = err != nil || strings.Contains(string(buf), "408")
	}
	t.Logf("slow client cut off after %v", time.Since(start).Round(time.Millisecond))
	if !closed {
		t.Fatal("a client trickling headers kept its connection")
	}
}
