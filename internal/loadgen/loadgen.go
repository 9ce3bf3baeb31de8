// Package loadgen sends a fixed number of HTTP requests from a fixed number
// of concurrent clients and reports throughput and latency percentiles: the
// one load generator of the benchmarks and load tests.
package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Result summarises one run.
type Result struct {
	Requests, Errors int
	Elapsed          time.Duration
	RPS              float64
	P50, P99, Max    time.Duration
	// FirstError is the first failure seen, for the report.
	FirstError string
}

func (r Result) String() string {
	return fmt.Sprintf("%d requests, %d errors, %.0f req/s, p50 %v, p99 %v", r.Requests, r.Errors, r.RPS,
		r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond))
}

// Request is one HTTP request to send.
type Request struct {
	Method, URL string
	Header      http.Header // may be nil
	Body        []byte
}

// Post is a POST of body to url, as contentType.
func Post(url, contentType string, body []byte) Request {
	return Request{Method: http.MethodPost, URL: url, Header: http.Header{"Content-Type": {contentType}}, Body: body}
}

// Run sends n requests, request(i) building the i-th, from clients
// goroutines sharing one pool of keep-alive connections. A request fails on
// a transport error or a status other than 200. Ending ctx stops the run
// between requests; a request in flight runs to its answer (or the
// client's one-minute timeout).
//
// The requests go out through fasthttp's client, not net/http's: on a
// loopback benchmark the load generator shares the server's cores, and
// net/http's client spends about three times the CPU a request (goroutine
// hand-offs, header maps), which would be measured as the server's.
func Run(ctx context.Context, n, clients int, request func(i int) (Request, error)) Result {
	fc := &fasthttp.Client{MaxConnsPerHost: clients, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		NoDefaultUserAgentHeader: true, DisablePathNormalizing: true}
	defer fc.CloseIdleConnections()
	return RunFunc(ctx, n, clients, func(ctx context.Context, i int) error {
		r, err := request(i)
		if err != nil {
			return err
		}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(r.Method)
		req.SetRequestURI(r.URL)
		for k, vs := range r.Header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		req.SetBodyRaw(r.Body)
		if err := fc.Do(req, resp); err != nil {
			return err
		}
		if resp.StatusCode() != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode())
		}
		return nil
	})
}

// RunFunc makes n calls, call(ctx, i) making the i-th and saying whether it
// failed, from clients goroutines: Run for any transport (gRPC, say).
func RunFunc(ctx context.Context, n, clients int, call func(ctx context.Context, i int) error) Result {
	lat := make([]time.Duration, n)
	var next, errs atomic.Int64
	var first sync.Once
	res := Result{Requests: n}
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := call(ctx, i)
				lat[i] = time.Since(t0)
				if err != nil {
					errs.Add(1)
					first.Do(func() { res.FirstError = err.Error() })
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Errors = int(errs.Load())
	res.RPS = float64(n) / res.Elapsed.Seconds()
	res.P50, res.P99, res.Max = Quantile(lat, 0.5), Quantile(lat, 0.99), Quantile(lat, 1)
	return res
}

// Quantile is the p-quantile (0..1) of durations, by the nearest rank below;
// d is not modified.
func Quantile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}
