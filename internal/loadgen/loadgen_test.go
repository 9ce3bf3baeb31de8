package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Run sends every request as built (method, path, headers, body) and
// counts answers other than 200 as errors.
func TestRunSendsRequestsAsBuilt(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("X-Test")+" "+r.Header.Get("Content-Type")+" "+string(body)] = true
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/bad") {
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	defer srv.Close()
	const n = 50
	res := Run(context.Background(), n, 4, func(i int) (Request, error) {
		path := "/ok"
		if i%10 == 0 {
			path = "/bad"
		}
		req := Post(fmt.Sprintf("%s/v1/models/m%d:predict%s?q=%d", srv.URL, i, path, i), "text/plain", []byte(fmt.Sprint("body ", i)))
		req.Header.Set("X-Test", fmt.Sprint("h", i))
		return req, nil
	})
	if res.Requests != n || res.Errors != n/10 || res.FirstError != "HTTP 418" {
		t.Errorf("%d requests, %d errors (first %q); want %d, %d, HTTP 418", res.Requests, res.Errors, res.FirstError, n, n/10)
	}
	for i := range n {
		path := "/ok"
		if i%10 == 0 {
			path = "/bad"
		}
		if want := fmt.Sprintf("POST /v1/models/m%d:predict%s?q=%d h%d text/plain body %d", i, path, i, i, i); !seen[want] {
			t.Errorf("the server never saw %q", want)
		}
	}
	if res.RPS <= 0 || res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 {
		t.Errorf("rates and quantiles out of order: %+v", res)
	}
}

// A request that cannot be built, or a server that is gone, is an error,
// not a hang.
func TestRunCountsFailures(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res := Run(context.Background(), 6, 2, func(i int) (Request, error) {
		if i%2 == 0 {
			return Request{}, fmt.Errorf("cannot build %d", i)
		}
		return Request{Method: "GET", URL: url}, nil
	})
	if res.Errors != 6 || res.FirstError == "" {
		t.Errorf("%d errors (first %q), want 6", res.Errors, res.FirstError)
	}
}
