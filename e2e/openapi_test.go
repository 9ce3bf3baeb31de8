package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/api"
)

// Schemathesis (PyPI) generates requests from the served OpenAPI document
// and checks every answer: no 5xx, status codes, content types and bodies
// as documented. make test provides it through CHORUS_KSERVE_PYTHON's venv.
func TestOpenAPIContract(t *testing.T) {
	py := os.Getenv("CHORUS_KSERVE_PYTHON")
	st := filepath.Join(filepath.Dir(py), "schemathesis")
	if _, err := os.Stat(st); py == "" || err != nil {
		t.Skip("schemathesis not found beside CHORUS_KSERVE_PYTHON: run `make test`")
	}
	p := start(t, "serve", "--config", "configs/local.yaml", "--log-level", "warn")
	p.waitReady(30 * time.Second)

	resp, err := http.Get(p.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(served, api.OpenAPI) {
		t.Fatal("/openapi.json differs from api/openapi.json")
	}

	// positive_data_acceptance is left out: a schema cannot say that an
	// input's shape must match its data, which the server rightly enforces.
	// The coverage phase is left out: it fails inside hypothesis on Python 3.11.
	// :explain is left out: its documented answer is 501 (as KServe's, no
	// explainer), which schemathesis counts as a server error.
	cmd := exec.Command(st, "run", p.URL+"/openapi.json", "--checks", "all", "--exclude-checks", "positive_data_acceptance",
		"--exclude-operation-id", "v1Explain",
		"--phases", "examples,fuzzing,stateful", "--max-examples", "40", "--seed", "1", "-w", "2", "--request-timeout", "10")
	cmd.Dir = t.TempDir() // its .schemathesis cache stays out of the tree
	out, err := cmd.CombinedOutput()
	summary := string(out)
	if i := strings.Index(summary, "SUMMARY"); i >= 0 {
		summary = summary[i:]
	}
	t.Logf("schemathesis:\n%s", summary)
	if err != nil {
		t.Fatalf("schemathesis found failures:\n%s", out)
	}
}
