package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The gateway runs Go's garbage collector at server.gc_percent (default
// 400, set here to 250); GOGC, when set, wins. /metrics says which applies.
func TestGCPercent(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry.yaml")
	writeRegistry(t, reg, "m=testdata/models/sst2-tiny-a")
	models, err := os.ReadFile(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "gc.yaml")
	if err := os.WriteFile(cfg, append([]byte("server: {gc_percent: 250}\n"), models...), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, config, gogc, want string
	}{
		{"default", reg, "", "400"},
		{"configured", cfg, "", "250"},
		{"GOGC wins", cfg, "50", "50"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := startEnv(t, []string{"GOGC=" + c.gogc}, "serve", "--config", c.config, "--grpc_port", "0")
			p.waitReady(time.Minute)
			_, body := getURL(t, p.URL+"/metrics")
			if want := "\ngo_gc_gogc_percent " + c.want + "\n"; !strings.Contains(string(body), want) {
				i := strings.Index(string(body), "go_gc_gogc_percent ")
				t.Errorf("want%q in /metrics; it says %.40q", want, string(body)[max(i, 0):])
			}
		})
	}
}
