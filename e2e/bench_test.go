package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chorusml/chorus/internal/loadgen"
	"github.com/chorusml/chorus/internal/proctest"
)

// BenchmarkGatewayOverhead times the same one-text V2 request sent straight
// to a Chorus predictor and through a gateway in front of it (remote
// replica), interleaved so both see the same machine state; it reports the
// medians, the p99s and their differences.
//
//	go test -run '^$' -bench GatewayOverhead -benchtime 2000x ./e2e
func BenchmarkGatewayOverhead(b *testing.B) {
	cfg := predictorYAMLFor(b)
	pred := proctest.Start(b, nil, proctest.Chorus(b), "serve", "--config", cfg, "--http_port", "{port}", "--log-level", "warn")
	pred.WaitReady("/v2/health/ready", 30*time.Second)
	gwCfg := filepath.Join(b.TempDir(), "gateway.yaml")
	yaml := fmt.Sprintf("models:\n  - name: sst2\n    labels: [NEGATIVE, POSITIVE]\n    replicas: [{type: kserve, url: %q, logits: tensor}]\n", pred.URL)
	if err := os.WriteFile(gwCfg, []byte(yaml), 0o644); err != nil {
		b.Fatal(err)
	}
	gw := proctest.Start(b, nil, proctest.Chorus(b), "serve", "--config", gwCfg, "--http_port", "{port}", "--log-level", "warn")
	gw.WaitReady("/v2/health/ready", 30*time.Second)

	text := []string{"Hello, my dog is cute"}
	for range 50 { // warm both paths
		_, _, _, _ = infer(pred.URL, "sst2", text)
		_, _, _, _ = infer(gw.URL, "sst2", text)
	}
	direct := make([]time.Duration, 0, b.N)
	via := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		for _, target := range []struct {
			url string
			out *[]time.Duration
		}{{pred.URL, &direct}, {gw.URL, &via}} {
			t0 := time.Now()
			status, _, msg, err := infer(target.url, "sst2", text)
			*target.out = append(*target.out, time.Since(t0))
			if err != nil || status != 200 {
				b.Fatalf("%d %s %v", status, msg, err)
			}
		}
	}
	b.StopTimer()
	q := func(d []time.Duration, p float64) float64 { return float64(loadgen.Quantile(d, p).Microseconds()) }
	b.ReportMetric(q(direct, 0.5), "direct-p50-µs")
	b.ReportMetric(q(via, 0.5), "gateway-p50-µs")
	b.ReportMetric(q(direct, 0.99), "direct-p99-µs")
	b.ReportMetric(q(via, 0.99), "gateway-p99-µs")
	b.ReportMetric(q(via, 0.5)/q(direct, 0.5), "p50-ratio")
	b.ReportMetric(q(via, 0.99)/q(direct, 0.99), "p99-ratio")
}
