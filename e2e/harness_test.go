package e2e

import (
	"bytes"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/chorusml/chorus/internal/proctest"
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
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
