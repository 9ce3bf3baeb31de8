package gateway_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/gateway"
)

// BenchmarkCacheHitHandler is the handler's own cost for a one-text V1
// request answered from the in-process cache (no network): where the
// cache-hit path spends its time (go test -bench CacheHit -cpuprofile).
func BenchmarkCacheHitHandler(b *testing.B) {
	srv := newServerWith(b, gateway.CacheOptions{Store: cache.NewLRU(1000, time.Hour)})
	body := `{"instances": ["Hello, my dog is cute"]}`
	do(srv, "POST", "/v1/models/distilbert:predict", body)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/models/distilbert:predict", strings.NewReader(body))
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
