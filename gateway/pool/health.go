package pool

import (
	"context"
	"sync"
	"time"
)

// Start runs active health checks until Close, for replicas whose backend
// can be asked.
func (p *Pool) Start(ctx context.Context) {
	if p.opts.HealthInterval < 0 {
		return
	}
	var checked []*Replica
	for _, r := range p.replicas {
		if _, ok := r.backend.(readier); ok {
			checked = append(checked, r)
		}
	}
	if len(checked) == 0 {
		return
	}
	ctx, p.stop = context.WithCancel(ctx)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.opts.HealthInterval)
		defer t.Stop()
		for {
			p.CheckNow(ctx, checked)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// CheckNow runs one round of active health checks on replicas.
func (p *Pool) CheckNow(ctx context.Context, replicas []*Replica) {
	var wg sync.WaitGroup
	for _, r := range replicas {
		rd, ok := r.backend.(readier)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, p.opts.HealthTimeout)
			defer cancel()
			err := rd.Ready(cctx)
			if ctx.Err() == nil {
				r.recordCheck(err == nil, &p.opts)
			}
		}()
	}
	wg.Wait()
}
