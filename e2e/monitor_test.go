package e2e

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/internal/proctest"
)

// scrape reads one sample of the gateway's /metrics (NaN when absent).
func scrape(t *testing.T, url, sample string) float64 {
	t.Helper()
	resp, err := client.Get(url + "/metrics")
	body := readBody(t, resp, err)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return math.NaN()
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			out = append(out, sc.Text())
		}
	}
	return out
}

// The demo model watched as in production (configs/local.yaml, its
// window of 3000): answers feed chorus_confidence; the test split's
// labels, replayed with calibrate --url --feedback, bring the rolling
// gauges to what calibrate reports on the same answers (accuracy 0.993,
// models/demo-sentiment/metrics.json); then a drifted stream (a quarter
// of a thousand labels flipped) moves them, as production drift would.
func TestMonitoringDemoModel(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "serve", "--config", "configs/local.yaml")
	p.waitReady(30 * time.Second)
	const (
		model = `{model="distilbert"}`
		test  = "data/demo-sentiment/test.jsonl"
	)
	if v := scrape(t, p.URL, "chorus_rolling_accuracy"+model); !math.IsNaN(v) {
		t.Fatalf("rolling accuracy %v before any feedback", v)
	}

	// A V1 and a V2 answer: two texts each.
	for _, req := range []struct{ path, body string }{
		{"/v1/models/distilbert:predict", `{"instances": ["Hello, my dog is cute", "I am feeling sad"]}`},
		{"/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": ["Hello, my dog is cute", "I am feeling sad"]}]}`},
	} {
		if code, body := post(t, p.URL+req.path, req.body); code != 200 {
			t.Fatalf("%s: %d %s", req.path, code, body)
		}
	}
	if got := scrape(t, p.URL, "chorus_confidence_count"+model); got != 4 {
		t.Errorf("chorus_confidence_count %v after 4 texts", got)
	}
	// Both seed sentences are confident (|logit gap| > 6): above 0.99.
	if got := scrape(t, p.URL, `chorus_confidence_bucket{model="distilbert",le="0.99"}`); got != 0 {
		t.Errorf("%v confident seed answers fell at or below 0.99", got)
	}

	// The reference: what calibrate measures on the same answers, before
	// any calibration (T = 1, 15 bins, as the gauges).
	ref := measure(t, dir, p.URL, "ref", readLines(t, filepath.Join(proctest.Root(), test)))
	if math.Abs(ref.Accuracy-0.993) > 1e-9 {
		t.Fatalf("the demo model's test accuracy is %v, metrics.json says 0.993", ref.Accuracy)
	}

	code, out := runCmd(t, "calibrate", "--url", p.URL, "--model", "distilbert", "--data", test, "--feedback")
	if code != 0 {
		t.Fatalf("calibrate --feedback: exit %d: %s", code, out)
	}
	t.Logf("calibrate --feedback:\n%s", out)
	if !strings.Contains(out, "fed back 3000 labels to distilbert") || !strings.Contains(out, "accuracy 0.9930") {
		t.Errorf("calibrate --feedback printed:\n%s", out)
	}
	checkGauges(t, p.URL, ref, 3000)
	if got := scrape(t, p.URL, "chorus_feedback_total"+model); got != 3000 {
		t.Errorf("chorus_feedback_total %v, want 3000", got)
	}
	// 4 answers, then the test split answered twice: by calibrate, and by
	// the replay (from the cache, and counted all the same).
	if got := scrape(t, p.URL, "chorus_confidence_count"+model); got != 6004 {
		t.Errorf("chorus_confidence_count %v, want 6004", got)
	}
	clean := ref

	// Drift: a thousand more answers whose labels disagree with the model
	// a quarter of the time. The window now holds the last 2000 of the
	// test split and these.
	lines := readLines(t, filepath.Join(proctest.Root(), test))
	var drifted []string
	for i, l := range lines[:1000] {
		var ex struct {
			Text  string `json:"text"`
			Label int    `json:"label"`
		}
		if err := json.Unmarshal([]byte(l), &ex); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			ex.Label = 1 - ex.Label
		}
		b, _ := json.Marshal(ex)
		drifted = append(drifted, string(b))
	}
	driftFile := writeLines(t, dir, "drifted.jsonl", drifted)
	if code, out := runCmd(t, "calibrate", "--url", p.URL, "--model", "distilbert", "--data", driftFile, "--feedback"); code != 0 {
		t.Fatalf("drifted replay: exit %d: %s", code, out)
	}
	ref = measure(t, dir, p.URL, "window", append(lines[1000:], drifted...))
	checkGauges(t, p.URL, ref, 3000)
	t.Logf("rolling window: clean accuracy %.4f NLL %.4f ECE %.4f; drifted accuracy %.4f NLL %.4f ECE %.4f",
		clean.Accuracy, clean.NLL, clean.ECE, ref.Accuracy, ref.NLL, ref.ECE)
	if !(ref.Accuracy < clean.Accuracy-0.05 && ref.NLL > clean.NLL && ref.ECE > clean.ECE) {
		t.Errorf("drift did not show: accuracy %v → %v, NLL %v → %v, ECE %v → %v", clean.Accuracy, ref.Accuracy, clean.NLL, ref.NLL, clean.ECE, ref.ECE)
	}
}

type measured struct{ Accuracy, NLL, ECE float64 }

// measure runs calibrate --url on lines and returns its before-
// calibration metrics: the gauges' numbers for the same answers.
func measure(t *testing.T, dir, url, name string, lines []string) measured {
	t.Helper()
	data := writeLines(t, dir, name+".jsonl", lines)
	out := filepath.Join(dir, name+".json")
	code, text := runCmd(t, "calibrate", "--url", url, "--model", "distilbert", "--data", data, "--out", out)
	if code != 0 {
		t.Fatalf("calibrate: exit %d: %s", code, text)
	}
	f := readCalibration(t, out)
	if f.Data.N != len(lines) || f.Bins != 15 {
		t.Fatalf("calibrate measured %d answers in %d bins", f.Data.N, f.Bins)
	}
	return measured{f.Data.Before.Accuracy, f.Data.Before.NLL, f.Data.Before.ECE}
}

func checkGauges(t *testing.T, url string, want measured, n int) {
	t.Helper()
	for _, c := range []struct {
		name string
		want float64
	}{
		{"chorus_rolling_accuracy", want.Accuracy}, {"chorus_rolling_nll", want.NLL},
		{"chorus_rolling_ece", want.ECE}, {"chorus_rolling_window_answers", float64(n)},
	} {
		// Text exposition prints float64s exactly (shortest round-trip).
		if got := scrape(t, url, c.name+`{model="distilbert"}`); math.IsNaN(got) || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s %v, calibrate measures %v", c.name, got, c.want)
		}
	}
}
