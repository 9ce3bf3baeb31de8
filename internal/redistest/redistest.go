// Package redistest runs a real redis-server for tests, on a free loopback
// port, with the faults tests need: kill, freeze (SIGSTOP), restart empty.
package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chorusml/chorus/internal/proctest"
)

// Server is a running redis-server.
type Server struct {
	t        testing.TB
	Port     int
	URL      string
	Addr     string
	password string
	proc     *proctest.Process
}

// Start runs redis-server without persistence; it is killed when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWithPassword(t, "")
}

// StartWithPassword is Start with AUTH required (requirepass); URL carries it.
func StartWithPassword(t testing.TB, password string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not found: run `make deps`")
	}
	s := &Server{t: t, Port: proctest.FreePort(t), password: password}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", s.Port)
	s.URL = "redis://" + s.Addr + "/0"
	if password != "" {
		s.URL = "redis://:" + password + "@" + s.Addr + "/0"
	}
	s.Restart()
	return s
}

// Restart starts redis-server again on the same port, empty.
func (s *Server) Restart() {
	s.t.Helper()
	args := []string{"--port", "{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"}
	if s.password != "" {
		args = append(args, "--requirepass", s.password)
	}
	s.proc = proctest.StartOnPort(s.t, s.Port, nil, "redis-server", args...)
	c := s.Client()
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server not answering on %s:\n%s", s.Addr, s.proc.Output())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// Client is a plain client to inspect or tamper with the data.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.password})
}

// Kill stops redis-server with SIGKILL.
func (s *Server) Kill() { s.proc.Kill() }

// Freeze stops the process (SIGSTOP): connections stay open, nothing answers.
func (s *Server) Freeze() { s.proc.Signal(syscall.SIGSTOP) }

// Thaw resumes a frozen server.
func (s *Server) Thaw() { s.proc.Signal(syscall.SIGCONT) }
