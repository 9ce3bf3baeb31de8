package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/internal/proctest"
)

// --pprof_addr serves Go's profiles on a listener of its own; the API port
// never serves them.
func TestPprofOnItsOwnListener(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry.yaml")
	writeRegistry(t, reg, "m=testdata/models/sst2-tiny-a")
	addr := "127.0.0.1:" + strconv.Itoa(proctest.FreePort(t))
	p := start(t, "serve", "--config", reg, "--grpc_port", "0", "--pprof_addr", addr)
	p.waitReady(time.Minute)
	if code, _ := post(t, p.URL+"/v1/models/m:predict", `{"instances": ["a fine film"]}`); code != 200 {
		t.Fatalf("predict: %d", code)
	}
	code, body := getURL(t, "http://"+addr+"/debug/pprof/heap?debug=1")
	if code != 200 || !strings.Contains(string(body), "heap profile:") {
		t.Errorf("heap profile on --pprof_addr: %d %.200q", code, body)
	}
	code, body = getURL(t, "http://"+addr+"/debug/pprof/profile?seconds=1")
	if code != 200 || len(body) == 0 {
		t.Errorf("CPU profile on --pprof_addr: %d, %d bytes", code, len(body))
	}
	if code, _ := getURL(t, p.URL+"/debug/pprof/"); code != 404 {
		t.Errorf("API port /debug/pprof/: %d, want 404", code)
	}
}
