package protocol

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The timing headers of Hugging Face's text-embeddings-inference (TEI),
// which Chorus answers inference requests with, and reads from remote
// predictors that send them. Times are whole milliseconds, as TEI writes
// them.
const (
	HeaderComputeTime      = "X-Compute-Time"      // the whole request, as the server saw it
	HeaderTotalTime        = "X-Total-Time"        // the same (TEI sends both)
	HeaderTokenizationTime = "X-Tokenization-Time" // turning texts into tokens
	HeaderQueueTime        = "X-Queue-Time"        // waiting for a batch to run in
	HeaderInferenceTime    = "X-Inference-Time"    // running the model
	HeaderComputeTokens    = "X-Compute-Tokens"    // tokens the model ran on, padding excluded
)

// timing parts, as bits.
const (
	partTokenization = 1 << iota
	partQueue
	partInference
	partTokens
	allParts = partTokenization | partQueue | partInference | partTokens
)

// Timing records where a request's time went in the backends that served
// it. The gateway puts one in each inference request's context
// (WithTiming); a backend that can measure adds to it (TimingFrom returns
// nil when there is none, and a nil *Timing ignores every call). Several
// backends may add to one Timing concurrently (an ensemble's members, a
// retry on another replica): times and tokens add up.
//
// A part is known when some backend measured it and none said it could
// not; a remote predictor that does not send a header leaves that part
// unknown, and the gateway then leaves its header out rather than guess.
type Timing struct {
	mu                             sync.Mutex
	tokenization, queue, inference time.Duration
	tokens                         int
	measured, unknown              int // bits of parts
}

type timingKey struct{}

// WithTiming returns ctx carrying t.
func WithTiming(ctx context.Context, t *Timing) context.Context {
	return context.WithValue(ctx, timingKey{}, t)
}

// TimingFrom returns the Timing WithTiming stored, or nil.
func TimingFrom(ctx context.Context) *Timing {
	t, _ := ctx.Value(timingKey{}).(*Timing)
	return t
}

// AddTokenization records time spent tokenizing and the tokens produced
// (after truncation, special tokens included, no padding).
func (t *Timing) AddTokenization(d time.Duration, tokens int) {
	t.add(func() { t.tokenization += d; t.tokens += tokens }, partTokenization|partTokens)
}

// AddQueue records time spent waiting for a batch (0 without batching).
func (t *Timing) AddQueue(d time.Duration) { t.add(func() { t.queue += d }, partQueue) }

// AddInference records time spent running the model.
func (t *Timing) AddInference(d time.Duration) { t.add(func() { t.inference += d }, partInference) }

func (t *Timing) add(f func(), parts int) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f()
	t.measured |= parts
}

// AddHeaders records what a remote predictor's answer says in TEI's
// headers (another Chorus sends them); a part it does not state, or states
// as something other than a count, becomes unknown.
func (t *Timing) AddHeaders(h http.Header) {
	if t == nil {
		return
	}
	read := func(name string) (float64, bool) {
		v, err := strconv.ParseFloat(h.Get(name), 64)
		return v, err == nil && v >= 0 && !math.IsInf(v, 0)
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range []struct {
		name string
		part int
		add  func(float64)
	}{
		{HeaderTokenizationTime, partTokenization, func(v float64) { t.tokenization += ms(v) }},
		{HeaderQueueTime, partQueue, func(v float64) { t.queue += ms(v) }},
		{HeaderInferenceTime, partInference, func(v float64) { t.inference += ms(v) }},
		{HeaderComputeTokens, partTokens, func(v float64) { t.tokens += int(v) }},
	} {
		if v, ok := read(p.name); ok {
			p.add(v)
			t.measured |= p.part
		} else {
			t.unknown |= p.part
		}
	}
}

// SetHeaders writes TEI's headers for a request that took total: the total
// always; each other part when it is known. computed is false when no
// backend was asked anything (every text came from the cache): then every
// part is known to be zero.
func (t *Timing) SetHeaders(h http.Header, total time.Duration, computed bool) {
	// One backing array for every value: a header per h.Set would cost an
	// allocation each on the cache-hit path. The names are canonical.
	vals := make([]string, 0, 6)
	set := func(name, v string) {
		vals = append(vals, v)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	all := ms(total)
	set(HeaderComputeTime, all)
	set(HeaderTotalTime, all)
	var tok, queue, inf time.Duration
	tokens, known := 0, allParts
	if computed {
		if t == nil {
			return
		}
		t.mu.Lock()
		tok, queue, inf, tokens = t.tokenization, t.queue, t.inference, t.tokens
		known = t.measured &^ t.unknown
		t.mu.Unlock()
	}
	for _, p := range [...]struct {
		name string
		part int
		v    int64
	}{
		{HeaderTokenizationTime, partTokenization, tok.Milliseconds()},
		{HeaderQueueTime, partQueue, queue.Milliseconds()},
		{HeaderInferenceTime, partInference, inf.Milliseconds()},
		{HeaderComputeTokens, partTokens, int64(tokens)},
	} {
		if known&p.part != 0 {
			set(p.name, strconv.FormatInt(p.v, 10))
		}
	}
}
