package deploy

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// docker-compose.yaml loads and validates with the compose-spec library,
// has the whole topology with health checks and start order, and mounts
// files that exist.
func TestComposeFile(t *testing.T) {
	root, _ := filepath.Abs("..")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yaml")}, cli.WithWorkingDirectory(root), cli.WithName("chorus"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose file: %v", err)
	}
	for _, name := range []string{"redis", "predictor-1", "predictor-2", "gateway", "otel-collector", "jaeger", "prometheus", "grafana"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("no service %s", name)
		}
	}
	for _, name := range []string{"redis", "predictor-1", "predictor-2", "gateway"} {
		if s := p.Services[name]; s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s has no health check", name)
		}
	}
	gw := p.Services["gateway"]
	for _, dep := range []string{"redis", "predictor-1", "predictor-2"} {
		if d, ok := gw.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("gateway does not wait for %s to be healthy: %+v", dep, d)
		}
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s: %v", name, v.Source, err)
				}
			}
		}
	}
}
