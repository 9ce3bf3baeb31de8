package cache

import (
	"context"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// LRU is the in-process store used when no Redis is configured: bounded by
// entries, each with a TTL.
type LRU struct {
	c *expirable.LRU[string, []byte]
}

// NewLRU holds at most size entries for at most ttl each.
func NewLRU(size int, ttl time.Duration) *LRU {
	return &LRU{c: expirable.NewLRU[string, []byte](size, nil, ttl)}
}

// Get returns the values of keys, nil where absent.
func (l *LRU) Get(_ context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if v, ok := l.c.Get(k); ok {
			out[i] = v
		}
	}
	return out, nil
}

// Set stores entries. The LRU's TTL is fixed when it is made; per-model TTLs
// apply to Redis only.
func (l *LRU) Set(entries map[string][]byte, _ time.Duration) {
	for k, v := range entries {
		l.c.Add(k, v)
	}
}

// Delete removes keys.
func (l *LRU) Delete(keys []string) {
	for _, k := range keys {
		l.c.Remove(k)
	}
}

// Close does nothing: the LRU owns no goroutine.
func (l *LRU) Close() error { return nil }
