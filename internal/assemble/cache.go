package assemble

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
	"github.com/chorusml/chorus/internal/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// Cache builds the logits store of a complete config (defaults filled):
// Redis when configured, else an in-process LRU; nil when the cache is off.
// Redis is not required to be up: the cache fails open.
func Cache(c config.Cache, tracing *telemetry.Tracing, log *slog.Logger) (gateway.LogitsCache, func(), error) {
	if !*c.Enabled {
		log.Info("cache off")
		return nil, func() {}, nil
	}
	if c.URL == "" && len(c.Addrs) == 0 {
		log.Info("cache: in-process LRU", slog.Int("max_entries", c.MaxEntries))
		return cache.NewLRU(c.MaxEntries, time.Duration(c.TTL)), func() {}, nil
	}
	r, err := cache.NewRedis(cache.RedisOptions{URL: c.URL, Addrs: c.Addrs, MasterName: c.MasterName,
		Password: os.Getenv("CHORUS_REDIS_PASSWORD"), Timeout: time.Duration(c.Timeout), WriteQueue: c.WriteQueue,
		TracerProvider: tracerOrNil(tracing)})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.Ping(ctx); err != nil {
		log.Warn("cache: Redis not reachable yet; serving without it until it is", slog.String("redis", r.Describe()), slog.Any("error", err))
	} else {
		log.Info("cache: Redis", slog.String("redis", r.Describe()))
	}
	return r, func() { _ = r.Close() }, nil
}

// tracerOrNil is the provider when spans are exported, else nil (no
// instrumentation at all, rather than a no-op one).
func tracerOrNil(t *telemetry.Tracing) trace.TracerProvider {
	if t.Enabled() {
		return t.Provider
	}
	return nil
}
