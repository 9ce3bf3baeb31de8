package gateway_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/chorusml/chorus/api"
)

// Every route the server answers is in the OpenAPI document, and every
// documented operation is answered (not 404 for the route itself).
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t)
	param := regexp.MustCompile(`\{[a-z]+\}`)
	for path, ops := range doc.Paths {
		if path == "/metrics" {
			continue // served when a Gatherer is set, as serve always does (TestMetrics)
		}
		concrete := param.ReplaceAllStringFunc(path, func(p string) string {
			return map[string]string{"{name}": "distilbert", "{version}": "1"}[p]
		})
		for method := range ops {
			body := ""
			if method == "post" {
				body = seedV1
				if strings.HasPrefix(path, "/v2") {
					body = seedV2
				}
			}
			w := do(srv, strings.ToUpper(method), concrete, body)
			if w.Code == 404 && strings.Contains(w.Body.String(), "no route") || w.Code == 405 {
				t.Errorf("%s %s (documented): %d %s", method, path, w.Code, w.Body)
			}
		}
	}
	if len(doc.Paths) < 14 {
		t.Errorf("only %d paths documented", len(doc.Paths))
	}
}
