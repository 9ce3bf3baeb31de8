package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// /docs serves the embedded page and the files it names, nothing else; the
// browser test (e2e TestDocsPage) checks that it works.
func TestDocsRoutes(t *testing.T) {
	srv := newServer(t)
	page := do(srv, "GET", "/docs", "")
	if page.Code != 200 || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %s", page.Code, page.Header())
	}
	for _, file := range []string{"docs/swagger-ui-bundle.js", "docs/swagger-ui.css", "docs/chorus-docs.js"} {
		if !strings.Contains(page.Body.String(), `"`+file+`"`) {
			t.Errorf("the page does not load %s", file)
		}
		w := do(srv, "GET", "/"+file, "")
		if w.Code != 200 || w.Body.Len() == 0 {
			t.Errorf("/%s: %d, %d bytes", file, w.Code, w.Body.Len())
		}
		if ct := w.Header().Get("Content-Type"); !strings.Contains(ct, map[bool]string{true: "css", false: "javascript"}[strings.HasSuffix(file, ".css")]) {
			t.Errorf("/%s: content type %q", file, ct)
		}
	}
	for _, path := range []string{"/docs/nope.js", "/docs/VERSION", "/docs/..%2Fopenapi.json", "/docs/dist"} {
		w := do(srv, "GET", path, "")
		var e struct{ Error string }
		if w.Code != 404 || json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %s, want a JSON 404", path, w.Code, w.Body)
		}
	}
}
