package cache_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/internal/proctest"
	"github.com/chorusml/chorus/internal/redistest"
)

const fp = "c649c2b56541aa33c649c2b56541aa33c649c2b56541aa33c649c2b56541aa33"

func TestCodecRoundTrip(t *testing.T) {
	row := []float32{-4.068715572357178, 4.366886138916016, float32(math.Inf(1))}
	got, err := cache.Decode(fp, 3, cache.Encode(fp, row))
	if err != nil || !slices.Equal(got, row) {
		t.Fatalf("%v %v", got, err)
	}
	bad := map[string][]byte{
		"short":           {1, 2},
		"version":         append([]byte{9}, cache.Encode(fp, row)[1:]...),
		"labels":          cache.Encode(fp, row[:2]),
		"fingerprint":     cache.Encode("0000"+fp[4:], row),
		"truncated":       cache.Encode(fp, row)[:15],
		"text in a value": []byte("I am feeling sad"),
	}
	for name, b := range bad {
		if _, err := cache.Decode(fp, 3, b); !errors.Is(err, cache.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

func TestKeyHasNoText(t *testing.T) {
	k := cache.Key("chorus", "sst2", fp, "my secret diary")
	if strings.Contains(k, "secret") || !strings.HasPrefix(k, "chorus:sst2:") {
		t.Fatalf("key %q", k)
	}
	if cache.Key("chorus", "sst2", fp, "a") == cache.Key("chorus", "sst2b", fp, "a") ||
		cache.Key("chorus", "sst2", fp, "a") == cache.Key("chorus", "sst2", "ff"+fp[2:], "a") {
		t.Fatal("keys of different models or fingerprints collide")
	}
}

func newRedis(t *testing.T, url string) *cache.Redis {
	t.Helper()
	r, err := cache.NewRedis(cache.RedisOptions{URL: url, Timeout: 50 * time.Millisecond, BreakerTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRedisGetSetTTL(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL)
	ctx := context.Background()
	r.Set(map[string][]byte{"k1": []byte("v1"), "k2": []byte("v2")}, time.Minute)
	r.Close() // flushes queued writes
	r = newRedis(t, srv.URL)
	got, err := r.Get(ctx, []string{"k1", "nope", "k2"})
	if err != nil || string(got[0]) != "v1" || got[1] != nil || string(got[2]) != "v2" {
		t.Fatalf("%q %v", got, err)
	}
	c := srv.Client()
	defer c.Close()
	if ttl := c.TTL(ctx, "k1").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("TTL %v, want (0, 1m]", ttl)
	}
	// Expiry: shorten the TTL in Redis and watch the entry go.
	c.PExpire(ctx, "k1", time.Millisecond)
	proctest.Eventually(t, 2*time.Second, "the expired entry to go", func() bool {
		got, _ = r.Get(ctx, []string{"k1"})
		return got[0] == nil
	})
	r.Delete([]string{"k2"})
	if n := c.Exists(ctx, "k2").Val(); n != 0 {
		t.Error("Delete left the key")
	}
}

// Fail-open: with Redis dead every Get errors quickly, Set never blocks,
// and the breaker stops calling Redis until it is back.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL)
	srv.Kill()
	for range 10 {
		t0 := time.Now()
		if _, err := r.Get(context.Background(), []string{"k"}); err == nil {
			t.Fatal("Get succeeded with Redis dead")
		}
		if d := time.Since(t0); d > time.Second {
			t.Fatalf("Get took %v with Redis dead", d)
		}
		r.Set(map[string][]byte{"k": []byte("v")}, time.Minute)
	}
	if st := r.Stats(); st.Skipped == 0 || st.Errors == 0 {
		t.Errorf("stats %+v: want errors, then calls skipped by the breaker", st)
	}
	srv.Restart()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := r.Get(context.Background(), []string{"k"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Redis back but the store never recovered")
		}
		time.Sleep(20 * time.Millisecond) // the breaker's probe comes after its timeout
	}
}

func TestRedisFrozenIsBoundedByTimeout(t *testing.T) {
	srv := redistest.Start(t)
	r := newRedis(t, srv.URL)
	if _, err := r.Get(context.Background(), []string{"warm"}); err != nil {
		t.Fatal(err)
	}
	srv.Freeze()
	defer srv.Thaw()
	var worst time.Duration
	for range 5 {
		t0 := time.Now()
		_, err := r.Get(context.Background(), []string{"k"})
		worst = max(worst, time.Since(t0))
		if err == nil {
			t.Fatal("Get succeeded against a frozen Redis")
		}
	}
	t.Logf("frozen Redis: slowest Get %v (timeout 50ms)", worst)
	if worst > 500*time.Millisecond {
		t.Errorf("Get took %v against a frozen Redis with a 50ms timeout", worst)
	}
}

func TestWriteQueueDropsWhenFull(t *testing.T) {
	srv := redistest.Start(t)
	r, err := cache.NewRedis(cache.RedisOptions{URL: srv.URL, WriteQueue: 1, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv.Freeze() // the writer blocks on the first batch; the queue fills
	for range 50 {
		r.Set(map[string][]byte{"k": []byte("v")}, time.Minute)
	}
	srv.Thaw()
	r.Close()
	if r.Stats().Dropped == 0 {
		t.Error("no write dropped with a queue of 1 and a frozen Redis")
	}
}

func TestLRU(t *testing.T) {
	l := cache.NewLRU(2, time.Minute)
	l.Set(map[string][]byte{"a": []byte("1")}, 0)
	l.Set(map[string][]byte{"b": []byte("2")}, 0)
	l.Set(map[string][]byte{"c": []byte("3")}, 0)
	got, _ := l.Get(context.Background(), []string{"a", "b", "c"})
	if got[0] != nil || string(got[1]) != "2" || string(got[2]) != "3" {
		t.Fatalf("LRU of 2 kept %q", got)
	}
	l.Delete([]string{"b"})
	if got, _ := l.Get(context.Background(), []string{"b"}); got[0] != nil {
		t.Fatal("Delete kept the entry")
	}
}

func TestLRUExpiry(t *testing.T) {
	l := cache.NewLRU(10, time.Minute)
	l.Set(map[string][]byte{"short": []byte("1")}, time.Nanosecond)
	l.Set(map[string][]byte{"long": []byte("2")}, 0) // the store's minute
	deadline := time.Now().Add(time.Second)
	for {
		got, _ := l.Get(context.Background(), []string{"short", "long"})
		if got[0] == nil {
			if string(got[1]) != "2" {
				t.Fatal("long-lived entry gone")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("1ns entry still served after a second")
		}
	}
}

func TestRedisAuth(t *testing.T) {
	srv := redistest.StartWithPassword(t, "s3cret")
	good := newRedis(t, srv.URL)
	if err := good.Ping(context.Background()); err != nil {
		t.Fatalf("with the password: %v", err)
	}
	if strings.Contains(good.Describe(), "s3cret") {
		t.Errorf("Describe leaks the password: %s", good.Describe())
	}
	bad := newRedis(t, "redis://"+srv.Addr+"/0")
	if _, err := bad.Get(context.Background(), []string{"k"}); err == nil {
		t.Fatal("Get without the password succeeded")
	}
}
