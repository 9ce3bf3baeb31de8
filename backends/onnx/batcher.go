package onnx

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/chorusml/chorus/protocol"
)

// Batching configures dynamic batching. The zero value turns it off; the
// registry turns it on by default with DefaultBatching (continuous).
//
// With MaxQueueDelay 0 batching is continuous: an idle model runs a lone
// request at once, and whatever arrives while a run is in progress forms
// the next run. With MaxQueueDelay > 0 the first request of a batch waits
// up to that long for others to fill it.
type Batching struct {
	// MaxBatchSize bounds texts per run (default 32 when batching is on).
	MaxBatchSize int
	// MaxBatchTokens bounds padded tokens per run: texts × the longest
	// text of the run (default 8192).
	MaxBatchTokens int
	// MaxQueueDelay is how long the first request of a batch may wait for
	// others to join it. Default 0: continuous batching, no wait.
	MaxQueueDelay time.Duration
	// QueueSize bounds waiting requests; past it Predict fails at once with
	// ErrUnavailable, which the gateway answers 503 with Retry-After
	// (default 1024).
	QueueSize int
	// ConcurrentRuns is how many runs may be in progress at once, each
	// formed from what queued meanwhile (default: DefaultConcurrentRuns of
	// the device). On a CPU a run that starts while the model is idle gets
	// every intra-op thread; runs that overlap another each get a share,
	// from a second session of the graph (see Options.IntraOpThreads).
	ConcurrentRuns int
	// GatherGap is how long a continuous run that would start while
	// another is in progress waits for one more request: it starts once
	// none has arrived for GatherGap, after GatherGaps of them in all, or
	// when it is full. 0: it starts at once. DefaultBatching sets
	// DefaultGatherGap; withDefaults leaves it as given.
	GatherGap time.Duration
}

// DefaultGatherGap is the default Batching.GatherGap. When a run ends, its
// clients' next requests come back over a millisecond or two; a run that
// started on the first of them at once would hold one or two texts, and
// the rest would wait behind it for a run slot. Measured on 2 cores, int8
// DistilBERT, 64 clients: without the wait runs alternated between 2 and
// 32 texts; with it nearly all held 32, and ONNX Runtime spent 7 % less
// time a text. The wait is short beside a run of an overlapping batch
// (tens of milliseconds), and an idle model never waits.
const DefaultGatherGap = 500 * time.Microsecond

// GatherGaps bounds a run's wait for arrivals to this many gaps in all, so
// that a steady trickle cannot hold it back.
const GatherGaps = 10

// DefaultConcurrentRuns is how many runs a model on device has in progress
// at once by default: on a CPU two when there are two cores or more, on a
// GPU one. Measured on 2 cores (README, Performance), int8 DistilBERT, 64
// clients: two one-thread runs serve 590–667 req/s where one two-thread run
// serves 534–589. The threads of one run wait for each other at every
// operator, so on a shared host a core taken by anything else stalls them
// all; runs on their own threads only slow down. More runs would shrink
// batches and lengthen runs for little more.
func DefaultConcurrentRuns(device string) int {
	if device != "" && device != DeviceCPU {
		return 1
	}
	return min(2, runtime.NumCPU())
}

// Enabled reports whether batching is configured.
func (b Batching) Enabled() bool {
	return b.MaxBatchSize > 0 || b.MaxQueueDelay > 0 || b.ConcurrentRuns > 0
}

// DefaultBatching is what the zero fields of an enabled Batching take on a
// CPU, and what the registry (gateway/config) serves in-process models with
// unless told otherwise: continuous batching (no queue delay). A lone
// request runs at once on every core; under load, what queues during a run
// forms the next, which lifts throughput without a wait.
func DefaultBatching() Batching {
	return Batching{MaxBatchSize: 32, MaxBatchTokens: 8192, QueueSize: 1024, ConcurrentRuns: DefaultConcurrentRuns(DeviceCPU),
		GatherGap: DefaultGatherGap}
}

// withDefaults fills b's zero fields for a model on device.
func (b Batching) withDefaults(device string) Batching {
	d := DefaultBatching()
	b.MaxBatchSize = cmp.Or(b.MaxBatchSize, d.MaxBatchSize)
	b.MaxBatchTokens = cmp.Or(b.MaxBatchTokens, d.MaxBatchTokens)
	b.QueueSize = cmp.Or(b.QueueSize, d.QueueSize)
	b.ConcurrentRuns = cmp.Or(b.ConcurrentRuns, DefaultConcurrentRuns(device))
	return b
}

// BatchStats count what the batcher did.
type BatchStats struct {
	Runs, Rows, Rejected, Dropped uint64
}

// pending is one request waiting in the queue.
type pending struct {
	ctx      context.Context
	enqueued time.Time
	encs     []encoding
	out      protocol.Logits
	err      error
	left     atomic.Int32 // rows not yet answered
	done     chan struct{}
	once     sync.Once

	// ran is the time of the runs that carried this request's texts;
	// written by the loop before done closes.
	ran time.Duration
}

func (p *pending) finish(err error) {
	p.once.Do(func() {
		p.err = err
		close(p.done)
	})
}

// runFunc runs encoded texts as one padded batch; overlapping says another
// run is in progress, waited is how long its oldest text queued, links the
// requests it serves.
type runFunc func(encs []encoding, overlapping bool, waited time.Duration, links ...trace.Link) (protocol.Logits, error)

// afterFunc starts a timer: its channel fires after d, stop cancels it.
// Tests pass a clock they drive.
type afterFunc func(d time.Duration) (c <-chan time.Time, stop func() bool)

func realAfter(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// batcher runs the texts of concurrent requests together, grouped by
// length so that short texts are not padded to long ones. Up to
// ConcurrentRuns runs are in progress at a time: requests that arrive
// meanwhile queue and form the next run (continuous batching), or, with
// MaxQueueDelay > 0, the first request of a batch also waits up to that
// long for others. Its loop goroutines, one per concurrent run, are owned
// by the model and stopped by Close.
type batcher struct {
	o        Batching
	run      runFunc
	after    afterFunc
	tracer   trace.Tracer
	observer Observer // nil: none
	queue    chan *pending
	stop     chan struct{}
	wg       sync.WaitGroup
	// running holds a token per run in progress (ConcurrentRuns at most):
	// a loop's, or a lone request's on its own goroutine (continuous
	// batching).
	running chan struct{}
	// taking is held by the loop forming a run (see loop).
	taking sync.Mutex
	// queued counts requests enqueued and not yet taken into a run.
	queued atomic.Int64
	// inRun counts runs in progress.
	inRun atomic.Int32

	runs, rows, rejected, dropped atomic.Uint64
}

func newBatcher(m *Model, o Batching) *batcher {
	overlaps, _ := m.observer.(OverlapObserver)
	run := func(encs []encoding, overlapping bool, waited time.Duration, links ...trace.Link) (protocol.Logits, error) {
		if overlapping && overlaps != nil {
			overlaps.ObserveOverlappingRun()
		}
		// No single client's context may cancel a run others share.
		return m.runBatch(context.Background(), m.sessionFor(overlapping), encs, waited, links...)
	}
	return startBatcher(o, run, realAfter, m.tracer, m.observer)
}

// startBatcher starts a batcher on o, its defaults filled (withDefaults).
func startBatcher(o Batching, run runFunc, after afterFunc, tracer trace.Tracer, observer Observer) *batcher {
	b := &batcher{o: o, run: run, after: after, tracer: tracer, observer: observer,
		queue: make(chan *pending, o.QueueSize), stop: make(chan struct{}), running: make(chan struct{}, o.ConcurrentRuns)}
	b.wg.Add(o.ConcurrentRuns)
	for range o.ConcurrentRuns {
		go b.loop()
	}
	return b
}

func (b *batcher) submit(ctx context.Context, encs []encoding) (protocol.Logits, error) {
	ctx, span := b.tracer.Start(ctx, "chorus.batch.wait")
	if span.IsRecording() { // attributes allocate: only for a span that keeps them
		span.SetAttributes(attribute.Int("chorus.texts", len(encs)))
	}
	defer span.End()
	if p := b.runAlone(ctx, encs); p != nil {
		return b.wait(ctx, p)
	}
	p, err := b.enqueue(ctx, encs)
	if err != nil {
		return nil, err
	}
	return b.wait(ctx, p)
}

// runAlone runs a request on its caller's goroutine when the model is
// idle (no run in progress) and nothing is queued (continuous batching
// only), and returns it answered; otherwise it returns nil. A lone request
// so skips the hand-off to the loop goroutine and back: it runs as it
// would with batching off. Requests that arrive meanwhile queue and form
// the next run, as behind any run. A request that arrives while another
// run is in progress queues: a loop gathers it with those that follow.
func (b *batcher) runAlone(ctx context.Context, encs []encoding) *pending {
	if b.o.MaxQueueDelay > 0 || b.queued.Load() > 0 || b.inRun.Load() > 0 {
		return nil
	}
	select {
	case b.running <- struct{}{}:
	default:
		return nil
	}
	defer func() { <-b.running }()
	p := newPending(ctx, encs)
	b.runBatch([]*pending{p})
	return p
}

func newPending(ctx context.Context, encs []encoding) *pending {
	p := &pending{ctx: ctx, enqueued: time.Now(), encs: encs, out: make(protocol.Logits, len(encs)), done: make(chan struct{})}
	p.left.Store(int32(len(encs)))
	return p
}

// enqueue puts a request in the queue, or fails at once when it is full.
func (b *batcher) enqueue(ctx context.Context, encs []encoding) (*pending, error) {
	p := newPending(ctx, encs)
	b.queued.Add(1)
	select {
	case b.queue <- p:
		return p, nil
	default:
		b.queued.Add(-1)
		b.rejected.Add(1)
		return nil, fmt.Errorf("%w: batch queue full (%d requests waiting)", protocol.ErrUnavailable, b.o.QueueSize)
	}
}

// wait blocks until the request is answered or its client leaves.
func (b *batcher) wait(ctx context.Context, p *pending) (protocol.Logits, error) {
	select {
	case <-p.done:
		if p.err != nil {
			return nil, p.err
		}
		// Whatever was not spent running this request's texts was spent
		// waiting: for a batch to fill, and for other chunks to run.
		timing := protocol.TimingFrom(ctx)
		timing.AddQueue(time.Since(p.enqueued) - p.ran)
		timing.AddInference(p.ran)
		return p.out, nil
	case <-ctx.Done():
		// The loop sees the context and drops the rows before running them.
		return nil, fmt.Errorf("predict: %w", ctx.Err())
	}
}

// row is one text of a pending request.
type row struct {
	p   *pending
	i   int
	enc encoding
}

func (b *batcher) loop() {
	defer b.wg.Done()
	for {
		// One loop at a time takes from the queue, from its first request
		// until its run is formed: a loop that waits for a free run with
		// its first request in hand would otherwise lose what queues behind
		// it to another loop, and one run split in two.
		b.taking.Lock()
		var first *pending
		select {
		case first = <-b.queue:
		case <-b.stop:
			b.taking.Unlock()
			b.drain()
			return
		}
		b.running <- struct{}{} // a lone request may be running on its own goroutine
		batch := b.collect(first)
		b.taking.Unlock()
		b.queued.Add(-int64(len(batch)))
		if b.observer != nil {
			b.observer.ObserveQueueDepth(len(b.queue))
		}
		b.runBatch(batch)
		<-b.running
	}
}

// collect forms a batch behind first, up to MaxBatchSize texts: whatever
// is already queued (it arrived during the previous run), then, with
// MaxQueueDelay > 0, what arrives before the delay ends, or, continuous,
// when another run is in progress, what gather adds.
func (b *batcher) collect(first *pending) []*pending {
	batch := []*pending{first}
	rows := len(first.encs)
queued:
	for rows < b.o.MaxBatchSize {
		select {
		case p := <-b.queue:
			batch = append(batch, p)
			rows += len(p.encs)
		default:
			break queued
		}
	}
	if rows >= b.o.MaxBatchSize {
		return batch
	}
	if b.o.MaxQueueDelay <= 0 {
		if b.o.GatherGap > 0 && b.inRun.Load() > 0 {
			return b.gather(batch, rows)
		}
		return batch
	}
	fire, stop := b.after(b.o.MaxQueueDelay)
	defer stop()
	for rows < b.o.MaxBatchSize {
		select {
		case p := <-b.queue:
			batch = append(batch, p)
			rows += len(p.encs)
		case <-fire:
			return batch
		case <-b.stop:
			return batch
		}
	}
	return batch
}

// gather adds to a batch that would overlap a run in progress the
// requests still arriving, until none has come for GatherGap, GatherGaps
// gaps in all, or the batch is full (see DefaultGatherGap).
func (b *batcher) gather(batch []*pending, rows int) []*pending {
	budget, stopBudget := b.after(GatherGaps * b.o.GatherGap)
	defer stopBudget()
	for rows < b.o.MaxBatchSize {
		quiet, stopQuiet := b.after(b.o.GatherGap)
		var p *pending
		select {
		case p = <-b.queue:
		case <-quiet:
		case <-budget:
		case <-b.stop:
		}
		stopQuiet()
		if p == nil {
			return batch
		}
		batch = append(batch, p)
		rows += len(p.encs)
	}
	return batch
}

// drain answers whatever is still queued after Close.
func (b *batcher) drain() {
	for {
		select {
		case p := <-b.queue:
			p.finish(fmt.Errorf("predict: model closed: %w", protocol.ErrUnavailable))
		default:
			return
		}
	}
}

// runBatch drops requests whose client has gone, sorts the remaining texts
// by length and runs them in chunks within the size and token budgets.
func (b *batcher) runBatch(batch []*pending) {
	var rows []row
	for _, p := range batch {
		if p.ctx.Err() != nil {
			b.dropped.Add(1)
			p.finish(fmt.Errorf("predict: %w", p.ctx.Err()))
			continue
		}
		for i, e := range p.encs {
			rows = append(rows, row{p: p, i: i, enc: e})
		}
	}
	slices.SortStableFunc(rows, func(a, c row) int { return len(a.enc.ids) - len(c.enc.ids) })
	for start := 0; start < len(rows); {
		end := start
		for end < len(rows) && end-start < b.o.MaxBatchSize {
			// Sorted ascending: the row being added is the longest so far.
			if end > start && (end-start+1)*len(rows[end].enc.ids) > b.o.MaxBatchTokens {
				break
			}
			end++
		}
		b.runChunk(rows[start:end])
		start = end
	}
}

func (b *batcher) runChunk(rows []row) {
	encs := make([]encoding, len(rows))
	oldest := time.Now()
	var links []trace.Link
	for i, r := range rows {
		encs[i] = r.enc
		if r.p.enqueued.Before(oldest) {
			oldest = r.p.enqueued
		}
		if i == 0 || r.p != rows[i-1].p {
			links = append(links, trace.LinkFromContext(r.p.ctx)) // the run serves these requests
		}
	}
	overlapping := b.inRun.Add(1) > 1
	start := time.Now()
	out, err := b.run(encs, overlapping, time.Since(oldest), links...)
	ran := time.Since(start)
	b.inRun.Add(-1)
	b.runs.Add(1)
	b.rows.Add(uint64(len(rows)))
	// Sorted by length, one request's rows need not be adjacent.
	seen := make(map[*pending]bool, len(rows))
	for _, r := range rows {
		if !seen[r.p] {
			seen[r.p] = true
			r.p.ran += ran
		}
	}
	for i, r := range rows {
		if err != nil {
			r.p.finish(err)
			continue
		}
		r.p.out[r.i] = out[i]
		if r.p.left.Add(-1) == 0 {
			r.p.finish(nil)
		}
	}
}

func (b *batcher) close() {
	close(b.stop)
	b.wg.Wait()
}

// BatchStats reads the batcher's counters (zero without batching).
func (m *Model) BatchStats() BatchStats {
	if m.batcher == nil {
		return BatchStats{}
	}
	b := m.batcher
	return BatchStats{Runs: b.runs.Load(), Rows: b.rows.Load(), Rejected: b.rejected.Load(), Dropped: b.dropped.Load()}
}
