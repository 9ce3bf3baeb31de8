package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorusml/chorus/backends/kserve"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/internal/redistest"
)

func redisStore(t *testing.T, url string) *cache.Redis {
	t.Helper()
	r, err := cache.NewRedis(cache.RedisOptions{URL: url, Timeout: 50 * time.Millisecond, BreakerTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// flushWrites waits until the store holds n keys: fills are asynchronous.
func flushWrites(t *testing.T, srv *redistest.Server, n int64) {
	t.Helper()
	c := srv.Client()
	defer c.Close()
	proctest.Eventually(t, 5*time.Second, fmt.Sprintf("%d keys in the store", n), func() bool {
		return c.DBSize(context.Background()).Val() >= n
	})
}

func doH(srv *gateway.Server, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	return w
}

var idOrHits = regexp.MustCompile(`"id":"[^"]*"|"parameters":(null|\{"cache_hits":\d+\}),"outputs"`)

// normal drops what legitimately differs between two answers: the id and the cache report.
func normal(b string) string { return idOrHits.ReplaceAllString(b, "") }

func TestCacheHitMissPartial(t *testing.T) {
	rs := redistest.Start(t)
	srv := newServerWith(t, gateway.CacheOptions{Store: redisStore(t, rs.URL)})
	v2 := func(texts ...string) string {
		data, _ := json.Marshal(texts)
		return fmt.Sprintf(`{"inputs": [{"name": "input-0", "shape": [%d], "datatype": "BYTES", "data": %s}]}`, len(texts), data)
	}
	steps := []struct {
		texts  []string
		header string
		hits   int
	}{
		{[]string{"a", "b"}, "miss", 0},
		{[]string{"a", "b"}, "hit", 2},
		{[]string{"a", "c"}, "partial", 1},
		{[]string{"c", "c", "a"}, "hit", 3}, // repeats in one batch are one key
	}
	stored := []int64{2, 2, 3, 3} // distinct texts seen so far
	for i, s := range steps {
		w := doH(srv, "POST", "/v2/models/distilbert/infer", v2(s.texts...), nil)
		if w.Code != 200 || w.Header().Get("X-Chorus-Cache") != s.header || !strings.Contains(w.Body.String(), fmt.Sprintf(`"cache_hits":%d`, s.hits)) {
			t.Fatalf("step %d %v: %d %s %s, want %s with %d hits", i, s.texts, w.Code, w.Header().Get("X-Chorus-Cache"), w.Body, s.header, s.hits)
		}
		flushWrites(t, rs, stored[i])
	}
}

// Every output mode answers the same bytes from the cache as from the model.
func TestCachedAnswersAreIdentical(t *testing.T) {
	rs := redistest.Start(t)
	srv := newServerWith(t, gateway.CacheOptions{Store: redisStore(t, rs.URL)})
	texts := `["Hello, my dog is cute", "I am feeling sad", "Café DÉJÀ vu", ""]`
	cases := []struct{ path, body string }{
		{"/v1/models/distilbert:predict", `{"instances": ` + texts + `}`},
		{"/v1/models/distilbert-probs:predict", `{"instances": ` + texts + `}`},
		{"/v1/models/raw:predict", `{"instances": ` + texts + `}`},
		{"/v1/models/distilbert:predict", `{"instances": ` + texts + `, "parameters": {"output": "probabilities"}}`},
		{"/v1/models/distilbert:predict", `{"instances": ` + texts + `, "parameters": {"output": "logits"}}`},
		{"/v2/models/distilbert/infer", `{"inputs": [{"name": "input-0", "shape": [4], "datatype": "BYTES", "data": ` + texts + `}]}`},
		{"/v2/models/distilbert-probs/infer", `{"inputs": [{"name": "input-0", "shape": [4], "datatype": "BYTES", "data": ` + texts + `}]}`},
		{"/v2/models/raw/infer", `{"inputs": [{"name": "input-0", "shape": [4], "datatype": "BYTES", "data": ` + texts + `}], "outputs": [{"name": "output-0"}, {"name": "label"}, {"name": "probabilities"}, {"name": "logits"}]}`},
	}
	for _, c := range cases {
		model := doH(srv, "POST", c.path, c.body, map[string]string{"Cache-Control": "no-cache"})
		doH(srv, "POST", c.path, c.body, nil) // warms the cache
		// Fills are asynchronous: ask until the answer comes from the cache.
		var cached *httptest.ResponseRecorder
		proctest.Eventually(t, 5*time.Second, c.path+" from the cache", func() bool {
			cached = doH(srv, "POST", c.path, c.body, nil)
			return cached.Header().Get("X-Chorus-Cache") == "hit"
		})
		if model.Code != 200 || cached.Header().Get("X-Chorus-Cache") != "hit" {
			t.Fatalf("%s: %d, cache %q", c.path, model.Code, cached.Header().Get("X-Chorus-Cache"))
		}
		if normal(model.Body.String()) != normal(cached.Body.String()) {
			t.Errorf("%s %s\nmodel: %s\ncache: %s", c.path, c.body, model.Body, cached.Body)
		}
	}
}

// A model with a new fingerprint under the same name misses; a corrupt value
// is never returned, is deleted, and is counted.
func TestFingerprintAndCorruption(t *testing.T) {
	rs := redistest.Start(t)
	store := redisStore(t, rs.URL)
	a := newServerWith(t, gateway.CacheOptions{Store: store})
	body := `{"instances": ["Hello, my dog is cute"], "parameters": {"output": "logits"}}`
	if w := doH(a, "POST", "/v1/models/distilbert:predict", body, nil); w.Header().Get("X-Chorus-Cache") != "miss" {
		t.Fatalf("first request: %s", w.Header().Get("X-Chorus-Cache"))
	}
	flushWrites(t, rs, 1)

	// The same name served by another graph (sst2-tiny-b): its logits must not come back.
	p, err := rt.Open(filepath.Join(models, "sst2-tiny-b"), onnx.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := serve(t, gateway.ServerOptions{Limits: testLimits, Cache: gateway.CacheOptions{Store: store}}, []gateway.Servable{newModel(t, "distilbert", "", gateway.ModeLabel, p)})
	if w := doH(b, "POST", "/v1/models/distilbert:predict", body, nil); w.Header().Get("X-Chorus-Cache") != "miss" {
		t.Fatalf("new fingerprint served from the cache: %s", w.Body)
	}
	flushWrites(t, rs, 2)

	// Corrupt every stored value of the first model.
	c := rs.Client()
	defer c.Close()
	keys := c.Keys(context.Background(), "chorus:distilbert:*").Val()
	for _, k := range keys {
		c.Set(context.Background(), k, "garbage, not logits", 0)
	}
	want := doH(a, "POST", "/v1/models/distilbert:predict", body, map[string]string{"Cache-Control": "no-cache"}).Body.String()
	w := doH(a, "POST", "/v1/models/distilbert:predict", body, nil)
	if w.Body.String() != want || w.Header().Get("X-Chorus-Cache") != "miss" {
		t.Fatalf("corrupt value: %s (%s), want %s from the model", w.Body, w.Header().Get("X-Chorus-Cache"), want)
	}
	if a.CacheStats().Corrupt == 0 {
		t.Error("corrupt value not counted")
	}
}

// 50 concurrent identical requests on a cold key: one backend call, counted
// at the backend itself.
func TestSingleflight(t *testing.T) {
	var calls atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(100 * time.Millisecond) // a slow model: the 50 requests overlap it
		fmt.Fprint(w, `{"outputs":[{"name":"logits","shape":[1,2],"datatype":"FP32","data":[0.5,-0.5]}]}`)
	}))
	defer backend.Close()
	k, err := kserve.New(kserve.Config{URL: backend.URL, Model: "m", Protocol: "v2", Logits: kserve.LogitsTensor, Labels: []string{"NEGATIVE", "POSITIVE"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, gateway.ServerOptions{Limits: testLimits, Cache: gateway.CacheOptions{Store: cache.NewLRU(100, time.Minute)}}, []gateway.Servable{newModel(t, "remote", "", gateway.ModeLabel, k)})
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w := doH(srv, "POST", "/v1/models/remote:predict", `{"instances": ["cold text"]}`, nil); w.Code != 200 || w.Body.String() != `{"predictions":[0]}` {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 || calls.Load() != 1 {
		t.Fatalf("%d bad answers, %d backend calls; want 0 and exactly 1", bad.Load(), calls.Load())
	}
}

// Redis killed during a bounded load: no request fails; hits resume after a
// restart (empty), which raises no errors either.
func TestRedisKilledUnderLoad(t *testing.T) {
	rs := redistest.Start(t)
	srv := newServerWith(t, gateway.CacheOptions{Store: redisStore(t, rs.URL)})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	const total, clients = 1000, 16
	var next, done, failed atomic.Int64
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				body := fmt.Sprintf(`{"instances": ["text %d"]}`, i%50)
				resp, err := http.Post(hs.URL+"/v1/models/distilbert:predict", "application/json", strings.NewReader(body))
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if done.Add(1) == total/3 {
					close(killed)
				}
			}
		}()
	}
	<-killed
	rs.Kill()
	wg.Wait()
	t.Logf("Redis killed after %d of %d requests: %d failed; cache stats %+v", total/3, total, failed.Load(), srv.CacheStats())
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed with Redis killed", failed.Load())
	}

	rs.Restart() // empty
	deadline := time.Now().Add(10 * time.Second)
	for {
		w := doH(srv, "POST", "/v1/models/distilbert:predict", `{"instances": ["after restart"]}`, nil)
		if w.Code != 200 {
			t.Fatalf("after restart: %d %s", w.Code, w.Body)
		}
		if w.Header().Get("X-Chorus-Cache") == "hit" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no cache hit 10s after Redis came back")
		}
		time.Sleep(20 * time.Millisecond) // the breaker probes after its timeout
	}
}

// Redis frozen with SIGSTOP: requests are delayed by at most about the
// Redis deadline, and still answer.
func TestRedisFrozen(t *testing.T) {
	rs := redistest.Start(t)
	srv := newServerWith(t, gateway.CacheOptions{Store: redisStore(t, rs.URL)})
	doH(srv, "POST", "/v1/models/distilbert:predict", `{"instances": ["warm"]}`, nil)
	rs.Freeze()
	defer rs.Thaw()
	var lat []time.Duration
	for i := range 20 {
		t0 := time.Now()
		w := doH(srv, "POST", "/v1/models/distilbert:predict", fmt.Sprintf(`{"instances": ["frozen %d"]}`, i), nil)
		lat = append(lat, time.Since(t0))
		if w.Code != 200 {
			t.Fatalf("frozen Redis: %d %s", w.Code, w.Body)
		}
	}
	worst := time.Duration(0)
	for _, d := range lat {
		worst = max(worst, d)
	}
	t.Logf("Redis frozen: 20 requests, slowest %v (Redis deadline 50ms)", worst)
	if worst > time.Second {
		t.Errorf("a request took %v with Redis frozen", worst)
	}
}
