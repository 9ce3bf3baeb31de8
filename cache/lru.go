package cache

import (
	"context"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// LRU is the in-process store used when no Redis is configured: bounded by
// entries, each expiring after its TTL. Expiry is checked on read rather
// than by a background sweeper (golang-lru's expirable cache starts a
// goroutine it can never stop), so the store owns no goroutine.
type LRU struct {
	c   *lru.Cache[string, entry]
	ttl time.Duration
	now func() time.Time
}

type entry struct {
	val     []byte
	expires time.Time
}

// NewLRU holds at most size entries, by default for ttl each.
func NewLRU(size int, ttl time.Duration) *LRU {
	c, err := lru.New[string, entry](max(size, 1))
	if err != nil {
		panic(err) // only for size <= 0, excluded above
	}
	return &LRU{c: c, ttl: ttl, now: time.Now}
}

// Get returns the values of keys, nil where absent or expired.
func (l *LRU) Get(_ context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	now := l.now()
	for i, k := range keys {
		e, ok := l.c.Get(k)
		if !ok {
			continue
		}
		if !e.expires.IsZero() && now.After(e.expires) {
			l.c.Remove(k)
			continue
		}
		out[i] = e.val
	}
	return out, nil
}

// Set stores entries for ttl (the store's default when 0).
func (l *LRU) Set(entries map[string][]byte, ttl time.Duration) {
	if ttl == 0 {
		ttl = l.ttl
	}
	var exp time.Time
	if ttl > 0 {
		exp = l.now().Add(ttl)
	}
	for k, v := range entries {
		l.c.Add(k, entry{val: v, expires: exp})
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
