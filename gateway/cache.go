package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
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
	// truncated are the indices of the inputs the model cut to its max
	// length, whether scored now or when cached.
	truncated []int
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
	if !useCache { // the request's opt-out covers the backend's window cache too
		ctx = protocol.WithoutCache(ctx)
	}
	return cachedRows(ctx, s, m, v, texts, useCache,
		func(fp, t string) string { return cache.Key(s.cacheOpts.Namespace, m.name, fp, t) },
		func(ctx context.Context, v *Version, texts []string) (protocol.Logits, []int, error) {
			return withTruncation(ctx, func(ctx context.Context) (protocol.Logits, error) { return m.Predict(ctx, v, texts) })
		})
}

// withTruncation runs one backend call with a fresh truncation record
// (refusing when the request's does) and returns the indices it cut.
func withTruncation(ctx context.Context, call func(context.Context) (protocol.Logits, error)) (protocol.Logits, []int, error) {
	rec := &protocol.Truncation{Refuse: protocol.TruncationFrom(ctx).Refusing()}
	l, err := call(protocol.WithTruncation(ctx, rec))
	return l, rec.Cut(), err
}

// rowPredict scores inputs on a version and says which it truncated.
type rowPredict[T any] func(context.Context, *Version, []T) (protocol.Logits, []int, error)

// lookup reads keys from the store: each found row and whether it was
// truncated (nil rows are misses). Corrupt values are deleted and counted;
// a store error makes every key a miss.
func (s *Scorer) lookup(ctx context.Context, keys []string, fp string, k int) ([][]float32, []bool) {
	store := s.cacheOpts.Store
	found := make([][]float32, len(keys))
	cut := make([]bool, len(keys))
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
		row, truncated, err := cache.DecodeRow(fp, k, b)
		if err != nil {
			corrupt = append(corrupt, keys[i])
			continue
		}
		found[i], cut[i] = row, truncated
	}
	if len(corrupt) > 0 {
		s.cacheStats.corrupt.Add(uint64(len(corrupt)))
		store.Delete(corrupt)
	}
	return found, cut
}

// cachedRows is cached for any kind of input (texts, text pairs): key
// names an input's cache entry, predict scores inputs on v.
func cachedRows[T comparable](ctx context.Context, s *Scorer, m *Model, v *Version, inputs []T, useCache bool,
	key func(fp string, in T) string, predict rowPredict[T]) (protocol.Logits, cacheResult, error) {
	res := cacheResult{n: len(inputs)}
	store := s.cacheOpts.Store
	// A request that refuses over-length inputs is scored afresh: the
	// backend refuses, naming the request's own index.
	if store == nil || !useCache || m.cache.Off || protocol.TruncationFrom(ctx).Refusing() {
		logits, cut, err := predict(ctx, v, inputs)
		res.truncated = cut
		return logits, res, err
	}
	res.used = true
	fp := v.Fingerprint()
	k := len(m.meta.Labels)

	// One key per distinct input: a batch may repeat itself.
	keyOf := make([]string, len(inputs))
	index := map[string]int{}
	var keys []string
	var keyInputs []T // distinct keys, and the input of each
	for i, in := range inputs {
		key := key(fp, in)
		keyOf[i] = key
		if _, seen := index[key]; !seen {
			index[key] = len(keys)
			keys, keyInputs = append(keys, key), append(keyInputs, in)
		}
	}
	found, cut := s.lookup(ctx, keys, fp, k)

	var missInputs []T
	var missKeys []string
	missed := make([]bool, len(keys))
	for i, key := range keys {
		if found[i] == nil {
			missed[i] = true
			missKeys = append(missKeys, key)
			missInputs = append(missInputs, keyInputs[i])
		}
	}
	s.cacheStats.hits.Add(uint64(len(keys) - len(missKeys)))
	s.cacheStats.misses.Add(uint64(len(missKeys)))
	if len(missKeys) > 0 {
		rows, err := fill(ctx, s, m, v, missInputs, missKeys, fp, predict)
		if err != nil {
			return nil, res, err
		}
		for j, key := range missKeys {
			found[index[key]] = rows.logits[j]
		}
		for _, j := range rows.cut {
			cut[index[missKeys[j]]] = true
		}
	}
	out := make(protocol.Logits, len(inputs))
	for i, key := range keyOf {
		j := index[key]
		out[i] = found[j]
		if !missed[j] {
			res.hits++
		}
		if cut[j] {
			res.truncated = append(res.truncated, i)
		}
	}
	return out, res, nil
}

// fill computes the missing inputs once for every concurrent request that
// misses the same set, and writes them to the store.
func fill[T any](ctx context.Context, s *Scorer, m *Model, v *Version, inputs []T, keys []string, fp string,
	predict rowPredict[T]) (r filled, err error) {
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
		logits, cut, err := predict(context.WithoutCancel(ctx), v, inputs)
		if err != nil {
			return nil, err
		}
		entries := make(map[string][]byte, len(keys))
		for i, key := range keys {
			entries[key] = cache.EncodeRow(fp, logits[i], slices.Contains(cut, i))
		}
		s.cacheOpts.Store.Set(entries, cmp.Or(m.cache.TTL, s.cacheOpts.TTL))
		return filled{logits: logits, cut: cut}, nil
	})
	select {
	case <-ctx.Done():
		return filled{}, fmt.Errorf("waiting for the backend: %w", ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return filled{}, r.Err
		}
		return r.Val.(filled), nil
	}
}

// filled is what one backend call for the misses returned: their logits
// and the indices (among them) it truncated.
type filled struct {
	logits protocol.Logits
	cut    []int
}

// CacheStats are the gateway's cache counters.
type CacheStats struct{ Hits, Misses, Errors, Corrupt uint64 }

// CacheStats reads the counters.
func (s *Scorer) CacheStats() CacheStats {
	return CacheStats{Hits: s.cacheStats.hits.Load(), Misses: s.cacheStats.misses.Load(),
		Errors: s.cacheStats.errors.Load(), Corrupt: s.cacheStats.corrupt.Load()}
}
