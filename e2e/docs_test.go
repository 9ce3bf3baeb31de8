package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chorusml/chorus/api"
	"github.com/chorusml/chorus/internal/proctest"
)

// chromium finds the browser of TestDocsPage. make test sets
// CHORUS_CHROMIUM from scripts/browser/chromium.sh, which installs Debian's
// chromium when it is missing; empty means the script could not, and only
// then is the test skipped. Without the variable (a plain go test), a
// chromium on PATH is used.
func chromium(t *testing.T) string {
	t.Helper()
	path, set := os.LookupEnv("CHORUS_CHROMIUM")
	if set && path == "" {
		t.Skip("chromium could not be installed (scripts/browser/chromium.sh says why in make test's output)")
	}
	if !set {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
		}
		t.Skip("no chromium on PATH: run `make test`, which installs it")
	}
	if _, err := exec.LookPath(path); err != nil {
		t.Fatalf("CHORUS_CHROMIUM=%s: %v", path, err)
	}
	return path
}

// artifacts is where tests leave files for people to look at: CHORUS_ARTIFACTS,
// else artifacts/ at the repository root (ignored by git).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CHORUS_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(proctest.Root(), "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDocsPage opens /docs of a real chorus in headless Chromium: Swagger UI
// renders every operation of the OpenAPI document, and "try it out" on the
// V1 predict route, with the document's example, gets the seed's answer
// from the demo model with the timing headers. The screenshots are kept in
// artifacts/ (docs-page.png, docs-page-full.png); docs/api-docs.png in the
// README is a copy of docs-page.png.
func TestDocsPage(t *testing.T) {
	browser := chromium(t)
	p := start(t, "serve", "--config", "configs/local.yaml", "--log-level", "warn")
	p.waitReady(30 * time.Second)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox will not start
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	// Every documented operation is on the page, and nothing else.
	const op = `#operations-default-v1Predict`
	if err := chromedp.Do(bctx, chromedp.Navigate(p.URL+"/docs"), chromedp.WaitVisible(chromedp.CSS(op))); err != nil {
		t.Fatalf("load /docs: %v\n%s", err, p.output())
	}
	shown, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll(".opblock")).map(b =>
		b.querySelector(".opblock-summary-method").textContent + " " +
		b.querySelector(".opblock-summary-path").getAttribute("data-path"))`))
	if err != nil {
		t.Fatalf("read /docs: %v", err)
	}
	// Everything the page loaded came from chorus itself: no CDN.
	loaded, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`performance.getEntriesByType("resource").map(e => e.name)`))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range loaded {
		if !strings.HasPrefix(u, p.URL+"/") {
			t.Errorf("/docs loaded %s, from outside chorus", u)
		}
	}
	if len(loaded) < 3 { // the bundle, the stylesheet, our script, the document
		t.Errorf("/docs loaded only %v", loaded)
	}
	want := documentedOperations(t)
	slices.Sort(shown)
	if !slices.Equal(shown, want) {
		t.Errorf("/docs shows %d operations:\n%s\nthe document has %d:\n%s", len(shown), strings.Join(shown, "\n"), len(want), strings.Join(want, "\n"))
	}

	// Try it out: the path parameter and body come from the document's examples.
	if err := chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(op+` .opblock-summary-control`)),
		chromedp.WaitVisible(chromedp.CSS(op+` .try-out__btn`)),
		chromedp.Click(chromedp.CSS(op+` .try-out__btn`)),
		chromedp.WaitVisible(chromedp.CSS(op+` .body-param__text`)),
	); err != nil {
		t.Fatalf("try it out: %v\n%s", err, p.output())
	}
	name := run(t, bctx, chromedp.Value(chromedp.CSS(op+` input[placeholder="name"]`)))
	body := run(t, bctx, chromedp.Value(chromedp.CSS(op+` .body-param__text`)))
	if err := chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(op+` .execute`)),
		chromedp.WaitVisible(chromedp.CSS(op+` .live-responses-table tbody .response-col_status`)),
	); err != nil {
		t.Fatalf("execute: %v\n%s", err, p.output())
	}
	// The answer as the page shows it: status, then the description cell's
	// blocks under their headings (Response body, Response headers, …).
	live := run(t, bctx, chromedp.Evaluate[map[string]string](`(() => {
		const row = document.querySelector("`+op+` .live-responses-table tbody tr.response");
		const out = {status: row.querySelector(".response-col_status").textContent};
		for (const h of row.querySelectorAll(".response-col_description h5")) {
			out[h.textContent] = h.parentElement.querySelector("pre").textContent;
		}
		return out;
	})()`))
	status, answer, headers := live["status"], live["Response body"], live["Response headers"]
	if name != "distilbert" {
		t.Errorf("model name filled in: %q, want the example distilbert", name)
	}
	var sent map[string][]string
	if err := json.Unmarshal([]byte(body), &sent); err != nil || !slices.Equal(sent["instances"], []string{"Hello, my dog is cute", "I am feeling sad"}) {
		t.Errorf("request body: %s (%v), want the seed's instances", body, err)
	}
	if strings.TrimSpace(status) != "200" {
		t.Errorf("status %q, want 200", status)
	}
	if got := compactJSON(answer); got != `{"predictions":[1,0]}` {
		t.Errorf("answer %s, want {\"predictions\":[1,0]}", got)
	}
	for _, h := range []string{"x-compute-time", "x-inference-time", "x-compute-tokens", "x-request-id"} {
		if !strings.Contains(strings.ToLower(headers), h) {
			t.Errorf("response headers shown lack %s:\n%s", h, headers)
		}
	}

	// Screenshots: the whole page as rendered, and a shorter one for the
	// README with the tried operation's documented responses (a dozen error
	// examples) folded away, so that the routes and the live answer fit.
	full := run(t, bctx, chromedp.FullScreenshot(100))
	hidden := run(t, bctx, chromedp.Evaluate[int](`(() => {
		let n = 0;
		for (const table of document.querySelectorAll("`+op+` .responses-table:not(.live-responses-table)")) {
			table.style.display = "none";
			const h = table.previousElementSibling;
			if (h && h.textContent === "Responses") h.style.display = "none";
			n++;
		}
		return n;
	})()`))
	if hidden != 1 {
		t.Errorf("folded %d tables of documented responses, want 1", hidden)
	}
	short := run(t, bctx, chromedp.FullScreenshot(100))
	dir := artifacts(t)
	for file, png := range map[string][]byte{"docs-page-full.png": full, "docs-page.png": short} {
		if !strings.HasPrefix(string(png), "\x89PNG") {
			t.Fatalf("%s is not a PNG", file)
		}
		path := filepath.Join(dir, file)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (%d bytes)", path, len(png))
	}
}

// documentedOperations lists "METHOD path" for every operation of
// api/openapi.json, sorted, as Swagger UI writes them.
func documentedOperations(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var ops []string
	for path, methods := range doc.Paths {
		for m := range methods {
			ops = append(ops, fmt.Sprintf("%s %s", strings.ToUpper(m), path))
		}
	}
	slices.Sort(ops)
	return ops
}

// run runs one browser action that returns a value.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func compactJSON(s string) string {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return strings.TrimSpace(s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
