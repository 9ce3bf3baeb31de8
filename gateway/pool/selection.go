package pool

import "time"

// Selection policies.
const (
	// PolicyLeastOutstanding: of two replicas chosen at random, the one with
	// fewer requests in flight ("power of two choices"). The default.
	PolicyLeastOutstanding = "least_outstanding"
	// PolicyRoundRobin: each available replica in turn.
	PolicyRoundRobin = "round_robin"
	// PolicyWeighted: at random, in proportion to replica weights.
	PolicyWeighted = "weighted"
)

// Policies lists the valid policy names.
var Policies = []string{PolicyLeastOutstanding, PolicyRoundRobin, PolicyWeighted}

// pick chooses an available replica not in tried, or nil.
func (p *Pool) pick(now time.Time, tried map[*Replica]bool) *Replica {
	cands := make([]*Replica, 0, len(p.replicas))
	for _, r := range p.replicas {
		if !tried[r] && r.available(now) {
			cands = append(cands, r)
		}
	}
	switch len(cands) {
	case 0:
		return nil
	case 1:
		return cands[0]
	}
	switch p.opts.Policy {
	case PolicyRoundRobin:
		return cands[int(p.rr.Add(1)-1)%len(cands)]
	case PolicyWeighted:
		total := 0
		for _, r := range cands {
			total += r.Weight
		}
		n := p.opts.Rand(total)
		for _, r := range cands {
			if n < r.Weight {
				return r
			}
			n -= r.Weight
		}
		return cands[len(cands)-1]
	default:
		i := p.opts.Rand(len(cands))
		j := p.opts.Rand(len(cands) - 1)
		if j >= i {
			j++
		}
		a, b := cands[i], cands[j]
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	}
}
