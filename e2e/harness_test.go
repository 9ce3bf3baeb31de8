package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
)

// process is a running chorus, as the e2e tests use it.
type process struct{ *proctest.Process }

// start runs chorus with args plus --http_port on a free port.
func start(t *testing.T, args ...string) *process {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with extra environment variables ("K=V").
func startEnv(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	args = append(args, "--http_port", "{port}")
	return &process{proctest.Start(t, env, proctest.Chorus(t), args...)}
}

func (p *process) waitReady(timeout time.Duration) { p.WaitReady("/v2/health/ready", timeout) }

func (p *process) stop(sig syscall.Signal, timeout time.Duration) int { return p.Stop(sig, timeout) }

func (p *process) output() string { return p.Output() }

func (p *process) Wait(timeout time.Duration) int { return p.Process.Wait(timeout) }

func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return proctest.Run(t, nil, proctest.Chorus(t), args...)
}

func runCmdEnv(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	return proctest.Run(t, env, proctest.Chorus(t), args...)
}

func post(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader([]byte(body)))
	b := readBody(t, resp, err) // before resp is read: it is nil on err
	return resp.StatusCode, b
}

// readBody reads and closes the body of the response a call returned,
// failing the test on the call's error or the read's.
func readBody(t *testing.T, resp *http.Response, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// v2Answer is a V2 answer as the e2e tests read it.
type v2Answer struct {
	status  int
	header  http.Header
	outputs map[string]json.RawMessage // data by output name
	params  map[string]any             // parameters as plain JSON values
}

// inferV2 asks model at base for outputs of texts through protocol's V2
// client (none named: the default output).
func inferV2(t *testing.T, base, model string, texts []string, outputs ...string) v2Answer {
	t.Helper()
	req, err := protocol.TextRequest("", texts, outputs...)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(req)
	resp, err := http.Post(base+"/v2/models/"+model+"/infer", "application/json", bytes.NewReader(body))
	data := readBody(t, resp, err)
	a := v2Answer{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode != http.StatusOK {
		return a
	}
	r, err := protocol.DecodeResponse(data)
	if err != nil {
		t.Fatal(err)
	}
	a.outputs, a.params = map[string]json.RawMessage{}, map[string]any{}
	for _, o := range r.Outputs {
		a.outputs[o.Name] = o.Data
	}
	for k, v := range r.Parameters {
		var x any
		_ = json.Unmarshal(v, &x)
		a.params[k] = x
	}
	return a
}
