package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/protocol"
)

// fake is a scripted backend: each call pops the next error (nil: answer).
type fake struct {
	mu      sync.Mutex
	errs    []error
	calls   int
	ready   error
	blockCh chan struct{}
}

func (f *fake) Predict(ctx context.Context, texts []string) (protocol.Logits, error) {
	f.mu.Lock()
	f.calls++
	var err error
	if len(f.errs) > 0 {
		err, f.errs = f.errs[0], f.errs[1:]
	}
	block := f.blockCh
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	out := make(protocol.Logits, len(texts))
	for i := range out {
		out[i] = []float32{0, 1}
	}
	return out, nil
}
func (f *fake) Metadata() protocol.ModelMetadata {
	return protocol.ModelMetadata{Labels: []string{"a", "b"}}
}
func (f *fake) Close() error { return nil }
func (f *fake) Calls() int   { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

// checkable is a fake remote backend that active health checks can ask.
type checkable struct{ *fake }

func (c checkable) Ready(context.Context) error { c.mu.Lock(); defer c.mu.Unlock(); return c.ready }

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newPool(t *testing.T, opts Options, backends ...protocol.Predictor) (*Pool, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	opts.Now = c.now
	if opts.Rand == nil {
		opts.Rand = func(n int) int { return 0 }
	}
	var rs []*Replica
	for i, b := range backends {
		rs = append(rs, NewReplica(fmt.Sprint("r", i), 1, b))
	}
	p, err := New(rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

var (
	down    = fmt.Errorf("connection refused: %w", protocol.ErrUnavailable)
	garbage = fmt.Errorf("not JSON: %w", protocol.ErrBadGateway)
	badText = fmt.Errorf("remote said 400: %w", protocol.ErrInvalidInput)
)

func TestRetryGoesToAnotherReplica(t *testing.T) {
	a, b := &fake{errs: []error{down}}, &fake{}
	p, _ := newPool(t, Options{Policy: PolicyRoundRobin}, a, b)
	if _, err := p.Predict(context.Background(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if a.Calls() != 1 || b.Calls() != 1 {
		t.Errorf("calls a=%d b=%d, want 1 and 1", a.Calls(), b.Calls())
	}
}

func TestNoRetryOnRequestErrors(t *testing.T) {
	a, b := &fake{errs: []error{badText}}, &fake{}
	p, _ := newPool(t, Options{Policy: PolicyRoundRobin}, a, b)
	_, err := p.Predict(context.Background(), []string{"x"})
	if !errors.Is(err, protocol.ErrInvalidInput) || b.Calls() != 0 {
		t.Errorf("err %v, second replica called %d times; a 4xx must not be retried", err, b.Calls())
	}
}

func TestAttemptsBound(t *testing.T) {
	bs := []*fake{{errs: []error{garbage}}, {errs: []error{garbage}}, {errs: []error{garbage}}, {errs: []error{garbage}}}
	p, _ := newPool(t, Options{Policy: PolicyRoundRobin, Attempts: 2}, bs[0], bs[1], bs[2], bs[3])
	_, err := p.Predict(context.Background(), []string{"x"})
	calls := 0
	for _, b := range bs {
		calls += b.Calls()
	}
	if !errors.Is(err, protocol.ErrBadGateway) || calls != 2 {
		t.Errorf("err %v after %d calls, want ErrBadGateway after 2", err, calls)
	}
}

func TestNoRetryAfterClientGone(t *testing.T) {
	a, b := &fake{blockCh: make(chan struct{})}, &fake{}
	p, _ := newPool(t, Options{Policy: PolicyRoundRobin}, a, b)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for a.Calls() == 0 {
			time.Sleep(time.Millisecond) // waits for the call to start; not a timing assertion
		}
		cancel()
	}()
	_, err := p.Predict(ctx, []string{"x"})
	if !errors.Is(err, context.Canceled) || b.Calls() != 0 {
		t.Errorf("err %v, b called %d times: no retry after the client left", err, b.Calls())
	}
}

func TestBudgetBoundsAllTries(t *testing.T) {
	a := &fake{blockCh: make(chan struct{})}
	p, _ := newPool(t, Options{Budget: 20 * time.Millisecond}, a)
	_, err := p.Predict(context.Background(), []string{"x"})
	if !errors.Is(err, protocol.ErrGatewayTimeout) {
		t.Errorf("err %v, want ErrGatewayTimeout when the budget runs out", err)
	}
}

func TestAllDownFailsFast(t *testing.T) {
	a, b := &fake{errs: []error{down, down, down, down}}, &fake{errs: []error{down, down, down, down}}
	p, c := newPool(t, Options{Policy: PolicyRoundRobin, EjectAfter: 2}, a, b)
	for range 2 {
		if _, err := p.Predict(context.Background(), []string{"x"}); !errors.Is(err, protocol.ErrUnavailable) {
			t.Fatalf("err %v", err)
		}
	}
	// Both ejected now: answered without calling anyone.
	before := a.Calls() + b.Calls()
	_, err := p.Predict(context.Background(), []string{"x"})
	if !errors.Is(err, protocol.ErrUnavailable) || a.Calls()+b.Calls() != before {
		t.Fatalf("err %v, calls %d→%d: want a fast 503 without calls", err, before, a.Calls()+b.Calls())
	}
	if p.Ready() {
		t.Error("pool ready with every replica ejected")
	}
	c.advance(time.Second) // ejection over
	if !p.Ready() {
		t.Error("pool not ready after the ejection ended")
	}
}

// Ejection table: consecutive failures eject, with backoff doubling per
// ejection in a row and reset by a success.
func TestEjectionBackoff(t *testing.T) {
	a := &fake{}
	p, c := newPool(t, Options{EjectAfter: 2, EjectFor: time.Second, EjectMax: 3 * time.Second}, a)
	r := p.replicas[0]
	o := &p.opts
	steps := []struct {
		do        func()
		available bool
	}{
		{func() { r.recordFailure(c.now(), o) }, true},
		{func() { r.recordFailure(c.now(), o) }, false}, // 2 in a row: out for 1s
		{func() { c.advance(999 * time.Millisecond) }, false},
		{func() { c.advance(time.Millisecond) }, true},
		{func() { r.recordFailure(c.now(), o); r.recordFailure(c.now(), o) }, false}, // again: 2s
		{func() { c.advance(1999 * time.Millisecond) }, false},
		{func() { c.advance(time.Millisecond) }, true},
		{func() { r.recordFailure(c.now(), o); r.recordFailure(c.now(), o) }, false}, // capped at 3s
		{func() { c.advance(3 * time.Second) }, true},
		{func() { r.recordSuccess(); r.recordFailure(c.now(), o); r.recordFailure(c.now(), o) }, false}, // reset: 1s
		{func() { c.advance(time.Second) }, true},
	}
	for i, s := range steps {
		s.do()
		if got := r.available(c.now()); got != s.available {
			t.Fatalf("step %d: available %v, want %v", i, got, s.available)
		}
	}
}

// Active checks: Fall failures take a replica out, Rise successes bring it
// back, and a good check ends a passive ejection at once.
func TestActiveHealth(t *testing.T) {
	a := checkable{&fake{}}
	p, c := newPool(t, Options{Fall: 2, Rise: 2, EjectAfter: 1, EjectFor: time.Hour}, a)
	r := p.replicas[0]
	check := func(err error) {
		a.mu.Lock()
		a.ready = err
		a.mu.Unlock()
		p.CheckNow(context.Background(), p.replicas)
	}
	check(down)
	if !r.available(c.now()) {
		t.Fatal("down after one failed check, want Fall=2")
	}
	check(down)
	if r.available(c.now()) || p.Ready() {
		t.Fatal("still up after two failed checks")
	}
	check(nil)
	if r.available(c.now()) {
		t.Fatal("up after one good check, want Rise=2")
	}
	check(nil)
	if !r.available(c.now()) {
		t.Fatal("not back after two good checks")
	}
	r.recordFailure(c.now(), &p.opts) // ejected for an hour
	if r.available(c.now()) {
		t.Fatal("not ejected")
	}
	check(nil)
	if !r.available(c.now()) {
		t.Fatal("a good check must end the ejection")
	}
}

// Breaker table: it opens on a failure ratio over a window, lets one probe
// through once its timeout has passed, and closes when the probe succeeds.
func TestBreakerStates(t *testing.T) {
	a := &fake{}
	p, _ := newPool(t, Options{BreakerMinRequests: 4, BreakerFailureRatio: 0.5, BreakerTimeout: time.Nanosecond, EjectAfter: 100}, a)
	r := p.replicas[0]
	run := func(errs ...error) {
		a.mu.Lock()
		a.errs = append(a.errs, errs...)
		a.mu.Unlock()
		for range errs {
			_, _ = p.Predict(context.Background(), []string{"x"})
		}
	}
	run(nil, garbage, nil)
	if s := r.BreakerState(); s != "closed" {
		t.Fatalf("after 1 of 3 failures: %s", s)
	}
	run(garbage) // 2 of 4: ratio 0.5 reached
	if s := r.BreakerState(); s != "open" && s != "half-open" {
		t.Fatalf("after 2 of 4 failures: %s, want open", s)
	}
	// A nanosecond timeout has passed by now: the next call is the probe.
	run(nil)
	if s := r.BreakerState(); s != "closed" {
		t.Fatalf("after a good probe: %s, want closed", s)
	}
}

func TestMaxInFlight(t *testing.T) {
	a := &fake{blockCh: make(chan struct{})}
	p, _ := newPool(t, Options{MaxInFlight: 1}, a)
	started := make(chan struct{})
	go func() {
		close(started)
		_, _ = p.Predict(context.Background(), []string{"x"})
	}()
	<-started
	for a.Calls() == 0 {
		time.Sleep(time.Millisecond) // waits for the first call to be in flight
	}
	_, err := p.Predict(context.Background(), []string{"x"})
	close(a.blockCh)
	if !errors.Is(err, protocol.ErrUnavailable) {
		t.Fatalf("second request with the replica full: %v, want ErrUnavailable", err)
	}
}

// Selection table: which replica each policy picks, with inflight counts
// and the random draws fixed.
func TestSelection(t *testing.T) {
	mk := func(policy string, draws []int, weights []int, inflight []int64) (*Pool, func() int) {
		i := 0
		rnd := func(n int) int { d := draws[i%len(draws)] % n; i++; return d }
		var rs []*Replica
		for k := range weights {
			r := NewReplica(fmt.Sprint("r", k), weights[k], &fake{})
			rs = append(rs, r)
		}
		p, err := New(rs, Options{Policy: policy, Rand: rnd, Now: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		for k, n := range inflight {
			rs[k].inflight.Store(n)
		}
		return p, func() int {
			r := p.pick(time.Now(), map[*Replica]bool{})
			for k := range rs {
				if rs[k] == r {
					return k
				}
			}
			return -1
		}
	}
	// Power of two choices: of the two drawn, the less loaded.
	_, pick := mk(PolicyLeastOutstanding, []int{0, 1}, []int{1, 1, 1}, []int64{5, 2, 0})
	if got := pick(); got != 2 { // draws 0 and 1 → candidates 0 and 2 (second draw skips the first)
		t.Errorf("p2c picked %d, want 2 (fewer in flight)", got)
	}
	_, pick = mk(PolicyRoundRobin, []int{0}, []int{1, 1, 1}, nil)
	if got := []int{pick(), pick(), pick(), pick()}; fmt.Sprint(got) != "[0 1 2 0]" {
		t.Errorf("round robin %v", got)
	}
	_, pick = mk(PolicyWeighted, []int{0, 1, 2, 3}, []int{1, 3}, nil)
	if got := []int{pick(), pick(), pick(), pick()}; fmt.Sprint(got) != "[0 1 1 1]" {
		t.Errorf("weighted %v, want one in four on the weight-1 replica", got)
	}
}

func TestStartAndCloseOwnTheHealthLoop(t *testing.T) {
	a := checkable{&fake{ready: down}}
	p, _ := newPool(t, Options{HealthInterval: time.Millisecond, Fall: 1}, a)
	p.Start(context.Background())
	proctest.Eventually(t, 5*time.Second, "the health loop to mark the replica down", func() bool { return !p.Ready() })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}
