package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/trace"
)

// RedisOptions configure the Redis store. Zero fields take the defaults.
type RedisOptions struct {
	// URL is redis://[user:pass@]host:port[/db] or rediss:// for TLS.
	URL string
	// Addrs, instead of URL, are Sentinel or Cluster seeds (go-redis'
	// universal client): with MasterName a Sentinel setup, with several
	// addresses and no MasterName a Cluster.
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	DB         int
	// Timeout bounds every Redis call: past it the request goes on without
	// the cache (default DefaultTimeout).
	Timeout time.Duration
	// WriteQueue bounds fills waiting to be written; past it they are
	// dropped and counted (default DefaultWriteQueue batches).
	WriteQueue int
	// BreakerTimeout is how long Redis is skipped after it failed
	// repeatedly before one probe is let through (default
	// DefaultBreakerTimeout).
	BreakerTimeout time.Duration
	// TracerProvider traces Redis commands (db.* attributes). Default: none.
	TracerProvider trace.TracerProvider
}

// Redis is the shared logits store. It fails open: Redis down, slow or
// refusing writes never fails a request.
type Redis struct {
	client  redis.UniversalClient
	opts    RedisOptions
	breaker *gobreaker.CircuitBreaker[[]any]
	writes  chan writeBatch
	wg      sync.WaitGroup
	closing chan struct{}
	once    sync.Once

	errs, skipped, dropped, written atomic.Uint64
}

type writeBatch struct {
	entries map[string][]byte
	ttl     time.Duration
}

// NewRedis connects lazily (no round trip) and starts the writer.
func NewRedis(o RedisOptions) (*Redis, error) {
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.WriteQueue = cmp.Or(o.WriteQueue, DefaultWriteQueue)
	o.BreakerTimeout = cmp.Or(o.BreakerTimeout, DefaultBreakerTimeout)
	uo := &redis.UniversalOptions{Addrs: o.Addrs, MasterName: o.MasterName, Username: o.Username, Password: o.Password, DB: o.DB,
		DialTimeout: o.Timeout * 5, ReadTimeout: o.Timeout, WriteTimeout: o.Timeout, MaxRetries: -1, PoolSize: 64}
	if o.URL != "" {
		po, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("cache url: %w", err)
		}
		uo.Addrs, uo.Username, uo.Password, uo.DB, uo.TLSConfig = []string{po.Addr}, po.Username, po.Password, po.DB, po.TLSConfig
		if o.Password != "" {
			uo.Password = o.Password
		}
	}
	if len(uo.Addrs) == 0 {
		return nil, errors.New("cache: a Redis URL or addresses are required")
	}
	client := redis.NewUniversalClient(uo)
	if o.TracerProvider != nil {
		if err := redisotel.InstrumentTracing(client, redisotel.WithTracerProvider(o.TracerProvider)); err != nil {
			return nil, fmt.Errorf("trace Redis: %w", err)
		}
	}
	r := &Redis{
		client:  client,
		opts:    o,
		writes:  make(chan writeBatch, o.WriteQueue),
		closing: make(chan struct{}),
	}
	r.breaker = gobreaker.NewCircuitBreaker[[]any](gobreaker.Settings{
		Name:        "redis",
		MaxRequests: 1,
		Timeout:     o.BreakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 3 },
	})
	r.wg.Add(1)
	go r.writer()
	return r, nil
}

// Get fetches keys in one MGET; nil where absent. When Redis is down, slow
// or skipped by the breaker it returns an error and the caller treats every
// key as a miss.
func (r *Redis) Get(ctx context.Context, keys []string) ([][]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	vals, err := r.breaker.Execute(func() ([]any, error) {
		cctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
		defer cancel()
		return r.client.MGet(cctx, keys...).Result()
	})
	if err != nil {
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			r.skipped.Add(1)
		} else {
			r.errs.Add(1)
		}
		return nil, fmt.Errorf("cache get: %w", err)
	}
	out := make([][]byte, len(keys))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
	return out, nil
}

// Set queues entries to be written with ttl; it never blocks: when the
// queue is full the batch is dropped and counted.
func (r *Redis) Set(entries map[string][]byte, ttl time.Duration) {
	if len(entries) == 0 {
		return
	}
	select {
	case <-r.closing:
		r.dropped.Add(1)
	default:
		select {
		case r.writes <- writeBatch{entries, ttl}:
		default:
			r.dropped.Add(1)
		}
	}
}

// writer pipelines SET ... EX for each queued batch: one round trip each.
func (r *Redis) writer() {
	defer r.wg.Done()
	for {
		select {
		case b := <-r.writes:
			r.write(b)
		case <-r.closing:
			for { // flush what was accepted before Close
				select {
				case b := <-r.writes:
					r.write(b)
				default:
					return
				}
			}
		}
	}
}

func (r *Redis) write(b writeBatch) {
	_, err := r.breaker.Execute(func() ([]any, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*r.opts.Timeout)
		defer cancel()
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for k, v := range b.entries {
				p.Set(ctx, k, v, b.ttl)
			}
			return nil
		})
		return nil, err
	})
	if err != nil {
		r.dropped.Add(1)
		return
	}
	r.written.Add(uint64(len(b.entries)))
}

// Delete removes keys (corrupt values), best effort.
func (r *Redis) Delete(keys []string) {
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
	defer cancel()
	if err := r.client.Del(ctx, keys...).Err(); err != nil {
		r.errs.Add(1)
	}
}

// Ping checks the connection (for start-up logs; never required).
func (r *Redis) Ping(ctx context.Context) error {
	return r.client.Ping(ctx).Err()
}

// Close flushes queued writes, then closes the connections.
func (r *Redis) Close() error {
	r.once.Do(func() { close(r.closing) })
	r.wg.Wait()
	return r.client.Close()
}

// RedisStats are the store's counters.
type RedisStats struct{ Errors, Skipped, Dropped, Written uint64 }

// Stats reads the counters.
func (r *Redis) Stats() RedisStats {
	return RedisStats{Errors: r.errs.Load(), Skipped: r.skipped.Load(), Dropped: r.dropped.Load(), Written: r.written.Load()}
}

// SkippedCalls counts calls skipped while the breaker was open.
func (r *Redis) SkippedCalls() uint64 { return r.skipped.Load() }

// DroppedWrites counts fills dropped: queue full or Redis failing.
func (r *Redis) DroppedWrites() uint64 { return r.dropped.Load() }

// Describe names the store for logs, without credentials.
func (r *Redis) Describe() string {
	if r.opts.URL != "" {
		return RedactURL(r.opts.URL)
	}
	return strings.Join(r.opts.Addrs, ",")
}

// RedactURL hides the credentials of a Redis URL (user and password alike)
// for logs and error messages: redis://***@host:6379/0.
func RedactURL(u string) string {
	if at := strings.LastIndex(u, "@"); at >= 0 {
		if scheme, _, ok := strings.Cut(u, "://"); ok {
			return scheme + "://***@" + u[at+1:]
		}
	}
	return u
}
