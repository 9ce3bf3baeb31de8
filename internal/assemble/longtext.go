package assemble

import (
	"cmp"
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
)

// longText is an in-process replica's windowing, or nil when the model
// truncates; its windows go through the logits cache unless the model
// keeps out of it.
func (b *builder) longText(mc config.Model) *onnx.LongText {
	if !mc.LongText.Chunked() {
		return nil
	}
	l := &onnx.LongText{Window: mc.LongText.Window, Stride: mc.LongText.Stride, Combine: mc.LongText.Combine}
	if b.Deps.Cache != nil && *mc.Cache.Enabled {
		l.Cache = windowStore{store: b.Deps.Cache, namespace: b.cache.Namespace, model: mc.Name,
			ttl: cmp.Or(time.Duration(mc.Cache.TTL), time.Duration(b.cache.TTL))}
	}
	return l
}

// windowStore keeps window logits in the logits cache, under keys of
// their own: "<namespace>:<model>#window:<fingerprint>:<sha256 of the window key>".
type windowStore struct {
	store     gateway.LogitsCache
	namespace string
	model     string
	ttl       time.Duration
}

func (w windowStore) key(fp, window string) string {
	return cache.Key(w.namespace, w.model+"#window", fp, window)
}

// Get fails open: a store error or a value that does not decode is a miss.
func (w windowStore) Get(ctx context.Context, fp string, k int, keys []string) ([][]float32, error) {
	full := make([]string, len(keys))
	for i, key := range keys {
		full[i] = w.key(fp, key)
	}
	vals, err := w.store.Get(ctx, full)
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(keys))
	for i, b := range vals {
		if b != nil {
			out[i], _ = cache.Decode(fp, k, b) // corrupt: nil, a miss
		}
	}
	return out, nil
}

func (w windowStore) Set(fp string, rows map[string][]float32) {
	entries := make(map[string][]byte, len(rows))
	for key, r := range rows {
		entries[w.key(fp, key)] = cache.Encode(fp, r)
	}
	w.store.Set(entries, w.ttl)
}

// windowsMetric is what a chunking model reports its windows per text to
// (nil options when it truncates: it reports none).
func (b *builder) windowsMetric(mc config.Model) (*gateway.WindowsReport, error) {
	if !mc.LongText.Chunked() {
		return nil, nil
	}
	var h prometheus.ObserverVec
	if b.Metrics != nil {
		vec, err := b.Metrics.LongTextWindows()
		if err != nil {
			return nil, err
		}
		h = vec
	}
	return &gateway.WindowsReport{Histogram: h}, nil
}
