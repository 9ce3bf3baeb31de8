package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/protocol"
)

// LogitsCache is what the gateway needs from a logits store (Redis, LRU).
// Get returns nil for absent keys and an error when the store cannot answer
// (then every key is a miss); Set and Delete are best effort and never block.
type LogitsCache interface {
	Get(ctx context.Context, keys []string) ([][]byte, error)
	Set(entries map[string][]byte, ttl time.Duration)
	Delete(keys []string)
}

// CacheOptions configure the server's logits cache.
type CacheOptions struct {
	Store     LogitsCache
	Namespace string        // key prefix; default "chorus"
	TTL       time.Duration // default per entry; a model may set its own
}

// cacheResult says how a request's texts were served.
type cacheResult struct {
	used bool // the cache was consulted
	hits int  // texts answered from the cache
	n    int
}

// header is the X-Chorus-Cache value: hit, miss or partial.
func (r cacheResult) header() string {
	switch {
	case r.hits == 0:
		return "miss"
	case r.hits == r.n:
		return "hit"
	default:
		return "partial"
	}
}

// cacheCounters count what the cache did, for metrics and tests.
type cacheCounters struct {
	hits, misses, errors, corrupt atomic.Uint64
}

// cached serves texts from the cache where it can and from version v's
// pool for the rest, in one backend call per request; concurrent identical
// miss sets share one call (singleflight). The cache fails open: a store
// error makes every text a miss, never a failed request.
func (s *Scorer) cached(ctx context.Context, m *Model, v *Version, texts []string, useCache bool) (protocol.Logits, cacheResult, error) {
	res := cacheResult{n: len(texts)}
	store := s.cacheOpts.Store
	if store == nil || !useCache || m.cache.Off {
		logits, err := m.Predict(ctx, v, texts)
		return logits, res, err
	}
	res.used = true
	fp := v.Fingerprint()
	k := len(m.meta.Labels)

	// One key per distinct text: a batch may repeat itself.
	keyOf := make([]string, len(texts))
	index := map[string]int{}
	var keys, keyTexts []string // distinct keys, and the text of each
	for i, t := range texts {
		key := cache.Key(s.cacheOpts.Namespace, m.name, fp, t)
		keyOf[i] = key
		if _, seen := index[key]; !seen {
			index[key] = len(keys)
			keys, keyTexts = append(keys, key), append(keyTexts, t)
		}
	}
	found := make([][]float32, len(keys))
	lctx, span := s.tracer.Start(ctx, "chorus.cache.lookup")
	if span.IsRecording() { // attributes cost allocations on every hit; build them only for a span that keeps them
		span.SetAttributes(attribute.Int("chorus.cache.keys", len(keys)))
	}
	vals, err := store.Get(lctx, keys)
	endSpan(span, err)
	if err != nil {
		s.cacheStats.errors.Add(1)
		vals = nil
	}
	var corrupt []string
	for i, b := range vals {
		if b == nil {
			continue
		}
		row, err := cache.Decode(fp, k, b)
		if err != nil {
			corrupt = append(corrupt, keys[i])
			continue
		}
		found[i] = row
	}
	if len(corrupt) > 0 {
		s.cacheStats.corrupt.Add(uint64(len(corrupt)))
		store.Delete(corrupt)
	}

	var missTexts, missKeys []string
	missed := make([]bool, len(keys))
	for i, key := range keys {
		if found[i] == nil {
			missed[i] = true
			missKeys = append(missKeys, key)
			missTexts = append(missTexts, keyTexts[i])
		}
	}
	s.cacheStats.hits.Add(uint64(len(keys) - len(missKeys)))
	s.cacheStats.misses.Add(uint64(len(missKeys)))
	if len(missKeys) > 0 {
		rows, err := s.fill(ctx, m, v, missTexts, missKeys, fp)
		if err != nil {
			return nil, res, err
		}
		for j, key := range missKeys {
			found[index[key]] = rows[j]
		}
	}
	out := make(protocol.Logits, len(texts))
	for i, key := range keyOf {
		j := index[key]
		out[i] = found[j]
		if !missed[j] {
			res.hits++
		}
	}
	return out, res, nil
}

// fill computes the missing texts once for every concurrent request that
// misses the same set, and writes them to the store.
func (s *Scorer) fill(ctx context.Context, m *Model, v *Version, texts, keys []string, fp string) (l protocol.Logits, err error) {
	ctx, span := s.tracer.Start(ctx, "chorus.cache.fill")
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("chorus.cache.misses", len(keys)))
	}
	defer func() { endSpan(span, err) }()
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", m.name, v.Name, strings.Join(keys, "\x00"))
	flightKey := hex.EncodeToString(h.Sum(nil))
	ch := s.flights.DoChan(flightKey, func() (any, error) {
		// The call outlives any one caller: others may be waiting on it.
		// The pool's own budget bounds it. It keeps the leader's trace.
		logits, err := m.Predict(context.WithoutCancel(ctx), v, texts)
		if err != nil {
			return nil, err
		}
		entries := make(map[string][]byte, len(keys))
		for i, key := range keys {
			entries[key] = cache.Encode(fp, logits[i])
		}
		s.cacheOpts.Store.Set(entries, cmp.Or(m.cache.TTL, s.cacheOpts.TTL))
		return logits, nil
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the backend: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(protocol.Logits), nil
	}
}

// CacheStats are the gateway's cache counters.
type CacheStats struct{ Hits, Misses, Errors, Corrupt uint64 }

// CacheStats reads the counters.
func (s *Scorer) CacheStats() CacheStats {
	return CacheStats{Hits: s.cacheStats.hits.Load(), Misses: s.cacheStats.misses.Load(),
		Errors: s.cacheStats.errors.Load(), Corrupt: s.cacheStats.corrupt.Load()}
}
