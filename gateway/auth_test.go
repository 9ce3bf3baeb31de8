package gateway_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chorusml/chorus/gateway"
)

func authServer(t *testing.T, keys []gateway.APIKey, limits gateway.Limits) *gateway.Server {
	t.Helper()
	base := newServer(t)
	var auth *gateway.Auth
	if keys != nil {
		auth = gateway.NewAuth(keys)
	}
	srv := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: limits, Auth: auth})
	srv.SetRegistry(base.SetRegistry(nil))
	srv.SetReady(true)
	return srv
}

func withKey(srv *gateway.Server, method, path, body, key string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	return w
}

func TestAPIKeys(t *testing.T) {
	srv := authServer(t, []gateway.APIKey{
		{Name: "all", Hash: gateway.HashKey("key-all-0123456789"), Models: []string{"*"}},
		{Name: "probs-only", Hash: gateway.HashKey("key-probs-0123456789"), Models: []string{"distilbert-probs"}},
		{Name: "slow", Hash: gateway.HashKey("key-slow-0123456789"), Models: []string{"*"}, Rate: 0.001, Burst: 2},
	}, testLimits)
	cases := []struct {
		name, path, key string
		status          int
		want            string
	}{
		{"no key", "/v1/models/distilbert:predict", "", 401, "Authorization: Bearer"},
		{"wrong key", "/v1/models/distilbert:predict", "nope", 401, "unknown API key"},
		{"good key", "/v1/models/distilbert:predict", "key-all-0123456789", 200, "predictions"},
		{"model not allowed", "/v1/models/distilbert:predict", "key-probs-0123456789", 403, `may not use model`},
		{"model allowed", "/v1/models/distilbert-probs:predict", "key-probs-0123456789", 200, "predictions"},
	}
	for _, c := range cases {
		w := withKey(srv, "POST", c.path, seedV1, c.key)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, w.Code, w.Body, c.status, c.want)
		}
		if strings.Contains(w.Body.String(), "0123456789") {
			t.Errorf("%s: the answer repeats a key", c.name)
		}
	}
	if w := withKey(srv, "POST", "/v1/models/distilbert:predict", seedV1, ""); w.Header().Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	// Rate: a burst of 2, then 429 with Retry-After.
	var codes []int
	for range 4 {
		codes = append(codes, withKey(srv, "POST", "/v1/models/distilbert:predict", seedV1, "key-slow-0123456789").Code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Errorf("rate-limited key: %v, want 200, 200, 429…", codes)
	}
	if w := withKey(srv, "POST", "/v1/models/distilbert:predict", seedV1, "key-slow-0123456789"); w.Header().Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Probes and health stay open.
	for _, p := range []string{"/v2/health/live", "/v2/health/ready", "/v2"} {
		if w := withKey(srv, "GET", p, "", ""); w.Code != 200 {
			t.Errorf("%s without a key: %d", p, w.Code)
		}
	}
}

// Past max_in_flight requests the server sheds load at once with 503 and
// Retry-After, and serves the rest.
func TestAdmission(t *testing.T) {
	// Two requests hold the two slots (the gate keeps them in flight,
	// without timing); every other request meanwhile is shed with 503 and
	// Retry-After, and the two held ones still complete.
	gate := &gatePredictor{entered: make(chan struct{}, 2), release: make(chan struct{})}
	reg, err := gateway.NewRegistry([]gateway.Servable{newModel(t, "slow", "", gateway.ModeLabel, gate)})
	if err != nil {
		t.Fatal(err)
	}
	limits := testLimits
	limits.MaxInFlight = 2
	srv := gateway.NewServer(gateway.ServerOptions{Log: slog.New(slog.DiscardHandler), Limits: limits})
	srv.SetRegistry(reg)
	srv.SetReady(true)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	post := func() (int, string) {
		resp, err := http.Post(hs.URL+"/v1/models/slow:predict", "application/json", strings.NewReader(`{"instances": ["a"]}`))
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	held := make(chan int, 2)
	for range 2 {
		go func() { code, _ := post(); held <- code }()
	}
	<-gate.entered
	<-gate.entered
	var wg sync.WaitGroup
	var shed, other atomic.Int32
	for range 62 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, retry := post(); code == 503 && retry != "" {
				shed.Add(1)
			} else {
				other.Add(1)
				t.Logf("with both slots taken: %d, Retry-After %q", code, retry)
			}
		}()
	}
	wg.Wait()
	close(gate.release)
	if a, b := <-held, <-held; a != 200 || b != 200 {
		t.Errorf("the two held requests: %d and %d, want 200", a, b)
	}
	if shed.Load() != 62 || other.Load() != 0 {
		t.Errorf("with both slots taken: %d shed, %d other; want all 62 shed", shed.Load(), other.Load())
	}
}
