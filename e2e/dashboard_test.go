package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/internal/proctest"
)

// TestDashboardQueriesResolve checks deploy/grafana/dashboards/chorus.json
// against a running chorus: every metric its PromQL queries (panels and
// variables) name is one the binary exports at /metrics after real
// traffic — V1 and V2, a cache miss and hit, an error, dynamic batching.
func TestDashboardQueriesResolve(t *testing.T) {
	root := proctest.Root()
	reg := filepath.Join(t.TempDir(), "registry.yaml")
	yaml := fmt.Sprintf(`models:
  - name: distilbert
    replicas:
      - type: onnx
        model_dir: %s
        batching: {max_batch_size: 8, max_queue_delay: 1ms}
`, filepath.Join(root, "models", "demo-sentiment"))
	if err := os.WriteFile(reg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "serve", "--config", reg, "--log-level", "warn")
	p.waitReady(30 * time.Second)
	for _, r := range []struct{ path, body string }{
		{"/v1/models/distilbert:predict", seedV1Body},
		{"/v1/models/distilbert:predict", seedV1Body}, // a cache hit
		{"/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES", "data": ["great film"]}]}`},
		{"/v1/models/distilbert:predict", `{"instances": [1]}`}, // 400
	} {
		post(t, p.URL+r.path, r.body)
	}
	exported := scrapeNames(t, p.URL+"/metrics")

	raw, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "dashboards", "chorus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels     []dashPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	check := func(where, expr string) {
		names := promqlMetrics(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("%s: %s is not exported by chorus (query %q)", where, n, expr)
			}
		}
	}
	for _, v := range dash.Templating.List {
		// label_values(metric{…}, label)
		expr := strings.TrimSuffix(strings.TrimPrefix(v.Definition, "label_values("), ")")
		check("variable $"+v.Name, expr[:strings.LastIndex(expr, ",")])
	}
	panels := 0
	for _, row := range dash.Panels {
		for _, pn := range append([]dashPanel{row}, row.Panels...) {
			if pn.Type == "row" {
				t.Logf("%s", pn.Title)
				continue
			}
			panels++
			if len(pn.Targets) == 0 {
				t.Errorf("panel %q has no query", pn.Title)
			}
			var used []string
			for _, q := range pn.Targets {
				check(fmt.Sprintf("panel %q", pn.Title), q.Expr)
				used = append(used, promqlMetrics(q.Expr)...)
			}
			slices.Sort(used)
			t.Logf("  %-45s %s", pn.Title, strings.Join(slices.Compact(used), ", "))
		}
	}
	if panels < 12 {
		t.Errorf("%d panels", panels)
	}
}

const seedV1Body = `{"instances": ["Hello, my dog is cute", "I am feeling sad"]}`

type dashPanel struct {
	Type    string      `json:"type"`
	Title   string      `json:"title"`
	Panels  []dashPanel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// scrapeNames lists the series names in a Prometheus text exposition
// (histograms as their _bucket, _sum and _count series).
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) < 20 {
		t.Fatalf("only %d series names at %s", len(names), url)
	}
	return names
}

var (
	promString   = regexp.MustCompile(`"(\\.|[^"\\])*"`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promNumber   = regexp.MustCompile(`\b\d[\w.]*`) // 0.99, 1e3, and durations (5m)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// promqlMetrics returns the metric names a PromQL expression selects: the
// identifiers left once strings, label matchers, ranges, grouping label
// lists, numbers and durations, function calls and keywords are taken out.
func promqlMetrics(expr string) []string {
	s := promString.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRange.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	s = promNumber.ReplaceAllString(s, " ")
	var out []string
	for _, id := range promIdent.FindAllString(s, -1) {
		if strings.HasSuffix(id, "(") || promKeywords[strings.ToLower(id)] {
			continue // a function, or an operator
		}
		out = append(out, id)
	}
	return out
}

func TestPromqlMetrics(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le, model) (rate(a_bucket{job=~"$job", model=~"x}"}[$__rate_interval])))`: {"a_bucket"},
		`sum by (model) (rate(a_total{code=~"5.."}[5m])) / sum by (model) (rate(b_total[5m]))`:                      {"a_total", "b_total"},
		`a / on(instance) group_left(version) b offset 5m > bool 0`:                                                 {"a", "b"},
		`sum(rate(x_total[1h30m])) * 1e3 + time()`:                                                                  {"x_total"},
		`chorus_build_info`: {"chorus_build_info"},
	} {
		if got := promqlMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", expr, got, want)
		}
	}
}
