package pool

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/chorusml/chorus/protocol"
)

// Replica is one backend of a pool, with its health state.
type Replica struct {
	// Name identifies the replica in logs and metrics.
	Name string
	// Weight is its share under the weighted policy (default 1).
	Weight  int
	backend protocol.Predictor

	inflight    atomic.Int64
	maxInflight int64
	breaker     *gobreaker.TwoStepCircuitBreaker[struct{}]

	mu sync.Mutex
	// Passive health: consecutive retryable failures eject the replica
	// until ejectedUntil; each ejection in a row doubles the next one.
	consecFails  int
	ejectedUntil time.Time
	ejectFor     time.Duration
	// Active health: down after Fall failed checks in a row, up again
	// after Rise good ones.
	activeDown bool
	checkFails int
	checkOKs   int
}

// NewReplica wraps a backend.
func NewReplica(name string, weight int, backend protocol.Predictor) *Replica {
	if weight <= 0 {
		weight = 1
	}
	return &Replica{Name: name, Weight: weight, backend: backend}
}

// Backend is the wrapped predictor.
func (r *Replica) Backend() protocol.Predictor { return r.backend }

// InFlight is the number of requests the replica is serving.
func (r *Replica) InFlight() int64 { return r.inflight.Load() }

// BreakerState is the circuit breaker's state: closed, half-open or open.
func (r *Replica) BreakerState() string { return r.breaker.State().String() }

// available reports whether the replica may take a request now.
func (r *Replica) available(now time.Time) bool {
	r.mu.Lock()
	ok := !r.activeDown && !now.Before(r.ejectedUntil)
	r.mu.Unlock()
	if !ok || r.breaker.State() == gobreaker.StateOpen {
		return false
	}
	return r.maxInflight == 0 || r.inflight.Load() < r.maxInflight
}

// Healthy reports whether health checks and ejection admit the replica
// (ignoring load), as readiness sees it.
func (r *Replica) Healthy(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.activeDown && !now.Before(r.ejectedUntil)
}

func (r *Replica) recordFailure(now time.Time, o *Options) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.consecFails++
	if r.consecFails < o.EjectAfter {
		return
	}
	if r.ejectFor == 0 {
		r.ejectFor = o.EjectFor
	} else {
		r.ejectFor = min(2*r.ejectFor, o.EjectMax)
	}
	r.ejectedUntil = now.Add(r.ejectFor)
	r.consecFails = 0
}

func (r *Replica) recordSuccess() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.consecFails = 0
	r.ejectFor = 0
}

// recordCheck applies one active health check result.
func (r *Replica) recordCheck(ok bool, o *Options) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ok {
		r.checkFails = 0
		r.checkOKs++
		if r.activeDown && r.checkOKs >= o.Rise {
			r.activeDown = false
		}
		// A good check ends a passive ejection: the replica is back, so
		// traffic resumes without waiting out a long backoff.
		if !r.activeDown {
			r.ejectedUntil = time.Time{}
			r.ejectFor = 0
		}
		return
	}
	r.checkOKs = 0
	r.checkFails++
	if r.checkFails >= o.Fall {
		r.activeDown = true
	}
}

// readier is what active health checks need from a backend; in-process
// backends do not have it and are never checked.
type readier interface {
	Ready(ctx context.Context) error
}
