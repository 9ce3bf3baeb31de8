package pool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/chorusml/chorus/protocol"
)

// Options tune a pool. Zero fields take DefaultOptions.
type Options struct {
	// Policy is PolicyLeastOutstanding (default), PolicyRoundRobin or PolicyWeighted.
	Policy string
	// Attempts bounds tries per request, the first included (default 3).
	Attempts int
	// Budget bounds the total time of all tries (default 30s).
	Budget time.Duration
	// MaxInFlight bounds concurrent requests per replica (0: no bound).
	MaxInFlight int
	// EjectAfter consecutive retryable failures eject a replica (default 3)
	// for EjectFor (default 1s), doubling per ejection in a row up to
	// EjectMax (default 30s).
	EjectAfter int
	EjectFor   time.Duration
	EjectMax   time.Duration
	// The breaker opens when at least BreakerMinRequests requests in a
	// BreakerWindow (default 10 in 10s) failed at BreakerFailureRatio
	// (default 0.5) or more, and lets one probe through after BreakerTimeout
	// (default 5s).
	BreakerMinRequests  uint32
	BreakerFailureRatio float64
	BreakerWindow       time.Duration
	BreakerTimeout      time.Duration
	// Active health checks, for backends that can be asked (remote ones):
	// every HealthInterval (default 2s, negative: off), each bounded by
	// HealthTimeout (default 1s); Fall failures mark a replica down
	// (default 2), Rise successes bring it back (default 1).
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	Fall, Rise     int
	// Now and Rand are the clock and randomness (tests inject them).
	Now  func() time.Time
	Rand func(n int) int
	// Tracer makes a span per attempt (default: none).
	Tracer trace.Tracer
}

// DefaultOptions are the values zero Options fields take. The registry
// (gateway/config) fills its defaults from them, so they live here only.
func DefaultOptions() Options {
	return Options{
		Policy:              PolicyLeastOutstanding,
		Attempts:            3,
		Budget:              30 * time.Second,
		EjectAfter:          3,
		EjectFor:            time.Second,
		EjectMax:            30 * time.Second,
		BreakerMinRequests:  10,
		BreakerFailureRatio: 0.5,
		BreakerWindow:       10 * time.Second,
		BreakerTimeout:      5 * time.Second,
		HealthInterval:      2 * time.Second,
		HealthTimeout:       time.Second,
		Fall:                2,
		Rise:                1,
	}
}

// withDefaults fills the zero fields of o from DefaultOptions, and the
// clock, randomness and tracer.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	o.Policy = cmp.Or(o.Policy, d.Policy)
	o.Attempts = cmp.Or(o.Attempts, d.Attempts)
	o.Budget = cmp.Or(o.Budget, d.Budget)
	o.EjectAfter = cmp.Or(o.EjectAfter, d.EjectAfter)
	o.EjectFor = cmp.Or(o.EjectFor, d.EjectFor)
	o.EjectMax = cmp.Or(o.EjectMax, d.EjectMax)
	o.BreakerMinRequests = cmp.Or(o.BreakerMinRequests, d.BreakerMinRequests)
	o.BreakerFailureRatio = cmp.Or(o.BreakerFailureRatio, d.BreakerFailureRatio)
	o.BreakerWindow = cmp.Or(o.BreakerWindow, d.BreakerWindow)
	o.BreakerTimeout = cmp.Or(o.BreakerTimeout, d.BreakerTimeout)
	o.HealthInterval = cmp.Or(o.HealthInterval, d.HealthInterval)
	o.HealthTimeout = cmp.Or(o.HealthTimeout, d.HealthTimeout)
	o.Fall = cmp.Or(o.Fall, d.Fall)
	o.Rise = cmp.Or(o.Rise, d.Rise)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.IntN
	}
	if o.Tracer == nil {
		o.Tracer = noop.NewTracerProvider().Tracer("")
	}
	return o
}

// Pool serves a model from its replicas.
type Pool struct {
	replicas []*Replica
	opts     Options
	rr       atomic.Uint64
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// New builds a pool; Start begins its health checks.
func New(replicas []*Replica, opts Options) (*Pool, error) {
	if len(replicas) == 0 {
		return nil, errors.New("pool: no replicas")
	}
	opts = opts.withDefaults()
	for _, r := range replicas {
		r.maxInflight = int64(opts.MaxInFlight)
		r.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        r.Name,
			MaxRequests: 1,
			Interval:    opts.BreakerWindow,
			Timeout:     opts.BreakerTimeout,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				return c.Requests >= opts.BreakerMinRequests && float64(c.TotalFailures) >= opts.BreakerFailureRatio*float64(c.Requests)
			},
		})
	}
	return &Pool{replicas: replicas, opts: opts}, nil
}

// Replicas lists the pool's replicas.
func (p *Pool) Replicas() []*Replica { return p.replicas }

// Ready reports whether at least one replica is admitted by health checks.
func (p *Pool) Ready() bool {
	now := p.opts.Now()
	for _, r := range p.replicas {
		if r.Healthy(now) {
			return true
		}
	}
	return false
}

// Close stops health checks and closes every replica's backend.
func (p *Pool) Close() error {
	if p.stop != nil {
		p.stop()
	}
	p.wg.Wait()
	var errs []error
	for _, r := range p.replicas {
		errs = append(errs, r.backend.Close())
	}
	return errors.Join(errs...)
}

// Predict sends texts to a replica and, when it fails in a way another
// replica might not, to another: at most Attempts tries within Budget,
// never after the client has gone, never for a request the backend
// refused. When no replica can take the request it fails at once with
// ErrUnavailable.
func (p *Pool) Predict(ctx context.Context, texts []string) (protocol.Logits, error) {
	return p.attempt(ctx, map[*Replica]bool{}, func(ctx context.Context, r *Replica) (protocol.Logits, error) {
		return r.backend.Predict(ctx, texts)
	})
}

// PredictPairs is Predict for text pairs, sent only to the replicas whose
// backend is a protocol.PairPredictor that takes pairs; when none does,
// the request is refused (ErrInvalidInput): the model cannot take pairs.
func (p *Pool) PredictPairs(ctx context.Context, pairs [][2]string) (protocol.Logits, error) {
	skip := map[*Replica]bool{}
	for _, r := range p.replicas {
		if pp, ok := r.backend.(protocol.PairPredictor); !ok || !pp.TakesPairs() {
			skip[r] = true
		}
	}
	if len(skip) == len(p.replicas) {
		return nil, fmt.Errorf("%w: no replica of this model takes text pairs", protocol.ErrInvalidInput)
	}
	return p.attempt(ctx, skip, func(ctx context.Context, r *Replica) (protocol.Logits, error) {
		return r.backend.(protocol.PairPredictor).PredictPairs(ctx, pairs)
	})
}

// attempt runs call on replicas not in tried (which it fills), with
// Predict's retries and bounds.
func (p *Pool) attempt(ctx context.Context, tried map[*Replica]bool, call func(context.Context, *Replica) (protocol.Logits, error)) (protocol.Logits, error) {
	budget, cancel := context.WithTimeout(ctx, p.opts.Budget)
	defer cancel()
	skipped := len(tried)
	var lastErr error
	for attempt := 0; attempt < p.opts.Attempts; {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("client gone: %w", err)
		}
		if budget.Err() != nil {
			return nil, fmt.Errorf("retry budget of %v spent: %w (last: %v)", p.opts.Budget, protocol.ErrGatewayTimeout, lastErr) //nolint:errorlint // the class is the timeout; the last error is detail
		}
		r := p.pick(p.opts.Now(), tried)
		if r == nil {
			break
		}
		tried[r] = true
		done, err := r.breaker.Allow()
		if err != nil {
			continue // open or probing: not an attempt, try another
		}
		attempt++
		actx, span := p.opts.Tracer.Start(budget, "chorus.attempt", trace.WithAttributes(
			attribute.String("chorus.replica", r.Name), attribute.Int("chorus.attempt", attempt)))
		r.inflight.Add(1)
		logits, err := call(actx, r)
		r.inflight.Add(-1)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
		switch {
		case err == nil:
			done(nil)
			r.recordSuccess()
			return logits, nil
		case protocol.Retryable(err):
			done(err)
			r.recordFailure(p.opts.Now(), &p.opts)
			lastErr = err
		default:
			// The request's fault, or the client's: the replica is fine.
			done(nil)
			if ctx.Err() != nil {
				return nil, fmt.Errorf("client gone: %w", ctx.Err())
			}
			if budget.Err() != nil {
				return nil, fmt.Errorf("retry budget of %v spent: %w", p.opts.Budget, protocol.ErrGatewayTimeout)
			}
			return nil, err
		}
	}
	if lastErr != nil {
		return nil, fmt.Errorf("%d of %d replicas tried: %w", len(tried)-skipped, len(p.replicas)-skipped, lastErr)
	}
	return nil, fmt.Errorf("%w: all %d replicas are down or at capacity", protocol.ErrUnavailable, len(p.replicas)-skipped)
}
