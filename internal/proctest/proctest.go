// Package proctest runs real processes for tests: the chorus binary built
// once per test binary, servers on free ports, readiness polled with a
// deadline, output streamed into the test log, signals and exit codes.
package proctest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Root is the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Chorus builds cmd/chorus once per test binary and returns its path.
func Chorus(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chorus-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "chorus")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/chorus")
		cmd.Dir = Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build chorus: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// FreePort returns a loopback port that was free a moment ago: for servers
// that cannot say which port they bound (Start is safer where they can).
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a running server.
type Process struct {
	t    testing.TB
	cmd  *exec.Cmd
	Port int
	URL  string
	// GRPCPort is the port put in place of {grpc_port}, if any.
	GRPCPort int
	done     chan struct{}
	err      error
	mu       sync.Mutex
	out      bytes.Buffer
}

// Start runs a server that logs the address it bound ("listening
// addr=HOST:PORT", as chorus does) on port 0: the kernel picks the port and
// the log says which, so no other process can take it between a pick and a
// bind. The caller marks the port argument with the {port} placeholder.
// Cleanup kills the process and waits for it.
func Start(t testing.TB, env []string, name string, args ...string) *Process {
	t.Helper()
	p := StartOnPort(t, 0, env, name, args...)
	var port int
	Eventually(t, 30*time.Second, "the listening address in the log", func() bool {
		select {
		case <-p.done:
			t.Fatalf("process exited before listening: %v\n%s", p.err, p.Output())
		default:
		}
		m := listenRE.FindStringSubmatch(p.Output())
		if m == nil {
			return false
		}
		port, _ = strconv.Atoi(m[1])
		return true
	})
	p.Port, p.URL = port, fmt.Sprintf("http://127.0.0.1:%d", port)
	return p
}

// listenRE finds the port in chorus's "listening" line (text or JSON logs).
var listenRE = regexp.MustCompile(`listening"?[^\n]*?addr"?[=:]"?[^\s"]*:(\d+)`)

// Eventually polls cond until it holds, failing the test after timeout. It
// is the one polling loop of the tests: a short interval, never a sleep used
// as synchronisation.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// StartOnPort is Start on a given port (to restart a server where it was).
func StartOnPort(t testing.TB, port int, env []string, name string, args ...string) *Process {
	t.Helper()
	grpcPort := 0
	for i, a := range args {
		switch a {
		case "{port}":
			args[i] = strconv.Itoa(port)
		case "{grpc_port}":
			grpcPort = FreePort(t)
			args[i] = strconv.Itoa(grpcPort)
		}
	}
	args = noDefaultGRPC(name, args)
	cmd := exec.Command(name, args...)
	cmd.Dir = Root()
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p := &Process{t: t, cmd: cmd, Port: port, GRPCPort: grpcPort, URL: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		<-copied
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		t.Logf("%s %v output:\n%s", filepath.Base(name), args, p.Output())
	})
	return p
}

// Cmd is the running command (its Process for the pid).
func (p *Process) Cmd() *exec.Cmd { return p.cmd }

// Output is what the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// WaitReady polls path until it answers 200, the process exits, or timeout.
func (p *Process) WaitReady(path string, timeout time.Duration) {
	p.t.Helper()
	client := &http.Client{Timeout: time.Second}
	Eventually(p.t, timeout, p.URL+path+" to answer 200", func() bool {
		select {
		case <-p.done:
			p.t.Fatalf("process exited before ready: %v\n%s", p.err, p.Output())
		default:
		}
		resp, err := client.Get(p.URL + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// Signal sends sig.
func (p *Process) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	p.t.Helper()
	p.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends sig and returns the exit code, failing after timeout.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) int {
	p.t.Helper()
	p.Signal(sig)
	return p.Wait(timeout)
}

// Wait returns the exit code once the process ends, failing after timeout.
func (p *Process) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("still running %v later", timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Run runs name to completion and returns its exit code and output.
func Run(t testing.TB, env []string, name string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, noDefaultGRPC(name, args)...)
	cmd.Dir = Root()
	cmd.Env = append(os.Environ(), env...)
	out, _ := cmd.CombinedOutput()
	return cmd.ProcessState.ExitCode(), string(out)
}

// noDefaultGRPC turns gRPC off for a chorus serve that does not ask for it:
// its default port is the fixed 8081, on which parallel tests would collide.
func noDefaultGRPC(name string, args []string) []string {
	serving := len(args) > 0 && (args[0] == "serve" || strings.HasPrefix(args[0], "--")) // flags alone serve, as KServe's CLI
	if filepath.Base(name) != "chorus" || !serving || slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--grpc_port")
	}) {
		return args
	}
	return append(args, "--grpc_port", "0")
}
