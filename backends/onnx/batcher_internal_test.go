package onnx

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/chorusml/chorus/protocol"
)

// fakeRunner stands in for the graph: it records the texts of each run
// (each text is one token, its id), answers each text with its id as its
// one logit, and, when gated, holds every run until the test releases it.
type fakeRunner struct {
	mu      sync.Mutex
	runs    [][]uint32
	overlap []bool        // per run: whether it started while another ran
	started chan struct{} // receives once per run, when gated
	release chan struct{} // one receive lets one run finish, when gated
}

func newGatedRunner() *fakeRunner {
	return &fakeRunner{started: make(chan struct{}), release: make(chan struct{})}
}

func (f *fakeRunner) run(encs []encoding, overlapping bool, _ time.Duration, _ ...trace.Link) (protocol.Logits, error) {
	ids := make([]uint32, len(encs))
	out := make(protocol.Logits, len(encs))
	for i, e := range encs {
		ids[i] = uint32(e.ids[0])
		out[i] = []float32{float32(e.ids[0])}
	}
	f.mu.Lock()
	f.runs = append(f.runs, ids)
	f.overlap = append(f.overlap, overlapping)
	f.mu.Unlock()
	if f.started != nil {
		f.started <- struct{}{}
		<-f.release
	}
	return out, nil
}

func (f *fakeRunner) batches() [][]uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.runs)
}

func (f *fakeRunner) overlapping() []bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.overlap)
}

// fakeClock is the batcher's timer: the test fires it; calls counts timers.
type fakeClock struct {
	mu     sync.Mutex
	calls  int
	asked  chan struct{} // receives once per timer started
	firing chan time.Time
}

func (c *fakeClock) after(time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	c.calls++
	c.mu.Unlock()
	if c.asked != nil {
		c.asked <- struct{}{}
	}
	return c.firing, func() bool { return true }
}

func (c *fakeClock) timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func enc(id uint32) []encoding {
	return []encoding{{ids: []int64{int64(id)}, mask: []int64{1}}}
}

func testBatcher(t *testing.T, o Batching, r *fakeRunner, c *fakeClock) *batcher {
	t.Helper()
	b := startBatcher(o.withDefaults(DeviceCPU), r.run, c.after, noop.NewTracerProvider().Tracer(""), nil)
	t.Cleanup(b.close)
	return b
}

// answer waits for a queued request and checks it got its own logit back.
func answer(t *testing.T, b *batcher, p *pending, id uint32) {
	t.Helper()
	got, err := b.wait(context.Background(), p)
	if err != nil {
		t.Fatalf("text %d: %v", id, err)
	}
	if len(got) != 1 || got[0][0] != float32(id) {
		t.Fatalf("text %d answered %v", id, got)
	}
}

// Continuous batching (the default): an idle batcher runs a lone request
// at once, without starting a timer to wait for company.
func TestContinuousLoneRequestRunsAtOnce(t *testing.T) {
	r := &fakeRunner{}
	// A timer that fires at once: were the batcher to wait on it, the
	// request would still be answered, and the count below would say so.
	fired := make(chan time.Time, 1)
	fired <- time.Time{}
	c := &fakeClock{firing: fired}
	b := testBatcher(t, DefaultBatching(), r, c)
	for i := range uint32(3) {
		got, err := b.submit(context.Background(), enc(i+1))
		if err != nil || got[0][0] != float32(i+1) {
			t.Fatalf("request %d: %v %v", i, got, err)
		}
	}
	if n := c.timers(); n != 0 {
		t.Errorf("continuous batching started %d timers, want none", n)
	}
	if got := r.batches(); !slices.EqualFunc(got, [][]uint32{{1}, {2}, {3}}, slices.Equal) {
		t.Errorf("runs %v, want each lone request run alone", got)
	}
}

// Requests that arrive while a run is in progress form the next run,
// bounded by max_batch_size and length-grouped; requests whose client left
// while queued are dropped before running.
func TestContinuousArrivalsFormNextBatch(t *testing.T) {
	r := newGatedRunner()
	c := &fakeClock{}
	b := testBatcher(t, Batching{MaxBatchSize: 3, ConcurrentRuns: 1}, r, c)

	first := enqueueAll(t, b, 100)[0]
	<-r.started // run 1 holds text 100; the rest queue behind it
	gone, cancel := context.WithCancel(context.Background())
	left, err := b.enqueue(gone, enc(99))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	queued := enqueueAll(t, b, 7, 5, 6, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 { // runs 2 and 3 start once run 1 is released
			r.release <- struct{}{}
			<-r.started
		}
		r.release <- struct{}{}
	}()
	answer(t, b, first, 100)
	if _, err := b.wait(context.Background(), left); !errors.Is(err, context.Canceled) {
		t.Errorf("request whose client left: %v, want context.Canceled", err)
	}
	for i, id := range []uint32{7, 5, 6, 4} {
		answer(t, b, queued[i], id)
	}
	<-done
	// Run 2 took the next three requests (one of them gone: two texts),
	// run 3 the last; nothing waited on a timer.
	want := [][]uint32{{100}, {7, 5}, {6, 4}}
	if got := r.batches(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("runs %v, want %v", got, want)
	}
	if st := (BatchStats{Runs: b.runs.Load(), Dropped: b.dropped.Load()}); st.Runs != 3 || st.Dropped != 1 {
		t.Errorf("stats %+v, want 3 runs, 1 dropped", st)
	}
	if n := c.timers(); n != 0 {
		t.Errorf("%d timers started, want none", n)
	}
}

// Texts of one continuous batch are sorted by length and split by the
// padded-token budget, as with a queue delay.
func TestContinuousTokenBudget(t *testing.T) {
	r := newGatedRunner()
	b := testBatcher(t, Batching{MaxBatchSize: 8, MaxBatchTokens: 6, ConcurrentRuns: 1}, r, &fakeClock{})
	first := enqueueAll(t, b, 1)[0]
	<-r.started
	long := encoding{ids: []int64{9, 9, 9, 9}, mask: []int64{1, 1, 1, 1}}
	ps := make([]*pending, 3)
	for i, e := range [][]encoding{{long}, enc(2), enc(3)} {
		var err error
		if ps[i], err = b.enqueue(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.release <- struct{}{}
		for range 2 {
			<-r.started
			r.release <- struct{}{}
		}
	}()
	defer func() { <-done }()
	answer(t, b, first, 1)
	for i, id := range []uint32{9, 2, 3} {
		answer(t, b, ps[i], id)
	}
	// 2 short + 1 long = 3×4 padded tokens > 6: the short ones run together.
	want := [][]uint32{{1}, {2, 3}, {9}}
	if got := r.batches(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("runs %v, want %v", got, want)
	}
}

// With max_queue_delay set, the first request waits for others to fill the
// batch: until the batch is full or the delay ends.
func TestQueueDelayWaitsToFill(t *testing.T) {
	r := &fakeRunner{}
	c := &fakeClock{asked: make(chan struct{}), firing: make(chan time.Time)}
	b := testBatcher(t, Batching{MaxBatchSize: 2, MaxQueueDelay: time.Hour, ConcurrentRuns: 1}, r, c)

	a := enqueueAll(t, b, 1)[0]
	<-c.asked // the batcher holds text 1 and waits for company
	second := enqueueAll(t, b, 2)[0]
	answer(t, b, a, 1) // the batch filled up (2 texts) before the delay ended
	answer(t, b, second, 2)

	lone := enqueueAll(t, b, 3)[0]
	<-c.asked
	c.firing <- time.Time{} // the delay ends with one text
	answer(t, b, lone, 3)

	want := [][]uint32{{1, 2}, {3}}
	if got := r.batches(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("runs %v, want %v", got, want)
	}
}

// A full queue fails at once with ErrUnavailable (the gateway's 503).
func TestContinuousQueueFull(t *testing.T) {
	r := newGatedRunner()
	b := testBatcher(t, Batching{MaxBatchSize: 4, QueueSize: 2, ConcurrentRuns: 1}, r, &fakeClock{})
	running := enqueueAll(t, b, 1)[0]
	<-r.started
	queued := enqueueAll(t, b, 2, 3)
	if _, err := b.submit(context.Background(), enc(9)); !errors.Is(err, protocol.ErrUnavailable) {
		t.Errorf("third request into a queue of 2: %v, want ErrUnavailable", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.release <- struct{}{}
		<-r.started
		r.release <- struct{}{}
	}()
	defer func() { <-done }()
	answer(t, b, running, 1)
	answer(t, b, queued[0], 2)
	answer(t, b, queued[1], 3)
	if n := b.rejected.Load(); n != 1 {
		t.Errorf("%d rejected, want 1", n)
	}
}

// enqueueAll queues one request per text id, in order.
func enqueueAll(t *testing.T, b *batcher, ids ...uint32) []*pending {
	t.Helper()
	var queued []*pending
	for _, id := range ids {
		p, err := b.enqueue(context.Background(), enc(id))
		if err != nil {
			t.Fatal(err)
		}
		queued = append(queued, p)
	}
	return queued
}

// result is a request's answer.
type result struct {
	got protocol.Logits
	err error
}

// submitLone submits text id on a goroutine of its own; the channel gets
// its answer.
func submitLone(b *batcher, id uint32) <-chan result {
	lone := make(chan result, 1)
	go func() {
		got, err := b.submit(context.Background(), enc(id))
		lone <- result{got, err}
	}()
	return lone
}

// A lone request on an idle model runs on its caller's goroutine (the
// loop is not involved: it is held busy here); what arrives during that
// run queues and forms the next run.
func TestContinuousLoneRequestRunsOnCaller(t *testing.T) {
	r := newGatedRunner()
	b := testBatcher(t, Batching{MaxBatchSize: 4, ConcurrentRuns: 1}, r, &fakeClock{})
	lone := submitLone(b, 1)
	<-r.started
	if n := b.queued.Load(); n != 0 {
		t.Fatalf("%d requests queued while the lone one runs, want 0", n)
	}
	queued := enqueueAll(t, b, 3, 2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.release <- struct{}{}
		<-r.started
		r.release <- struct{}{}
	}()
	defer func() { <-done }()
	if res := <-lone; res.err != nil || res.got[0][0] != 1 {
		t.Fatalf("lone request: %v %v", res.got, res.err)
	}
	answer(t, b, queued[0], 3)
	answer(t, b, queued[1], 2)
	want := [][]uint32{{1}, {3, 2}}
	if got := r.batches(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("runs %v, want %v", got, want)
	}
}

// With two concurrent runs, a request that queues while one run is in
// progress starts a second at once, told it overlaps; a third waits for a
// run to end, and what queued meanwhile joins it. A run that starts alone
// is told so.
func TestConcurrentRunsOverlap(t *testing.T) {
	r := newGatedRunner()
	b := testBatcher(t, Batching{MaxBatchSize: 4, ConcurrentRuns: 2}, r, &fakeClock{})
	lone := submitLone(b, 1)
	<-r.started // run 1: the lone request, on its caller
	second := enqueueAll(t, b, 2)[0]
	<-r.started // run 2 starts while run 1 is held
	queued := enqueueAll(t, b, 3, 4)
	r.release <- struct{}{} // run 1 or 2 ends: run 3 takes texts 3 and 4
	<-r.started
	r.release <- struct{}{}
	r.release <- struct{}{}
	if res := <-lone; res.err != nil || res.got[0][0] != 1 {
		t.Fatalf("lone request: %v %v", res.got, res.err)
	}
	answer(t, b, second, 2)
	answer(t, b, queued[0], 3)
	answer(t, b, queued[1], 4)
	want := [][]uint32{{1}, {2}, {3, 4}}
	if got := r.batches(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("runs %v, want %v", got, want)
	}
	if got, want := r.overlapping(), []bool{false, true, true}; !slices.Equal(got, want) {
		t.Errorf("runs overlapping %v, want %v", got, want)
	}
}

// With GatherGap, a request that arrives while a run is in progress does
// not run alone: a loop gathers it with what arrives until the gap passes
// without arrivals, and a batch that fills starts without waiting.
func TestGatherWaitsForArrivals(t *testing.T) {
	r := newGatedRunner()
	c := &fakeClock{asked: make(chan struct{}, 16)}
	gap := make(chan time.Time) // the gap's timers fire here; the budget's never
	after := func(d time.Duration) (<-chan time.Time, func() bool) {
		c.after(d)
		if d == time.Millisecond {
			return gap, func() bool { return true }
		}
		return nil, func() bool { return true }
	}
	b := startBatcher(Batching{MaxBatchSize: 3, ConcurrentRuns: 2, GatherGap: time.Millisecond}.withDefaults(DeviceCPU),
		r.run, after, noop.NewTracerProvider().Tracer(""), nil)
	t.Cleanup(b.close)
	t.Cleanup(func() { // runs first: a failed test leaves runs gated, which Close would wait for
		if t.Failed() {
			go func() {
				for {
					select {
					case <-r.started:
					case r.release <- struct{}{}:
					}
				}
			}()
		}
	})
	lone := submitLone(b, 1)
	<-r.started // run 1: the lone request, alone
	second := submitLone(b, 2)
	within := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: not within 10 s", what)
		}
	}
	asked := func(what string) { t.Helper(); within(c.asked, "a timer for "+what) }
	asked("the budget of gathering run 2") // text 2 queued: run 1 is in progress
	asked("the first gap")
	third := enqueueAll(t, b, 3)[0]
	asked("the gap after text 3 joined")
	select {
	case gap <- time.Now():
	case <-time.After(10 * time.Second):
		t.Fatal("run 2 does not wait on its gap timer")
	}
	within(r.started, "run 2 (texts 2 and 3) after the gap") // run 2: texts 2 and 3
	rest := enqueueAll(t, b, 4, 5, 6)
	r.release <- struct{}{} // a run ends: run 3 takes 4, 5 and 6, full, at once
	within(r.started, "run 3 (full) without a timer firing")
	for range 2 {
		r.release <- struct{}{}
	}
	for i, ch := range []<-chan result{lone, second} {
		if res := <-ch; res.err != nil || res.got[0][0] != float32(i+1) {
			t.Fatalf("request %d: %v %v", i+1, res.got, res.err)
		}
	}
	answer(t, b, third, 3)
	for i, p := range rest {
		answer(t, b, p, uint32(4+i))
	}
	want := [][]uint32{{1}, {2, 3}, {4, 5, 6}}
	if got := r.batches(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("runs %v, want %v", got, want)
	}
	if n := c.timers(); n != 3 {
		t.Errorf("%d timers started, want 3 (the budget and two gaps of run 2; none for the full run 3)", n)
	}
}
