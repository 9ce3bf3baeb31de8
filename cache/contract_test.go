package cache_test

import (
	"testing"
	"time"

	"github.com/chorusml/chorus/cache"
	"github.com/chorusml/chorus/cache/cachetest"
	"github.com/chorusml/chorus/internal/redistest"
)

// Both stores keep the one contract the gateway relies on.
func TestStoreContract(t *testing.T) {
	t.Run("lru", func(t *testing.T) {
		cachetest.Run(t, func(t *testing.T) cachetest.Store {
			l := cache.NewLRU(1000, time.Hour)
			t.Cleanup(func() { l.Close() })
			return l
		})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		cachetest.Run(t, func(t *testing.T) cachetest.Store {
			c := srv.Client()
			defer c.Close()
			if err := c.FlushAll(t.Context()).Err(); err != nil { // each subtest starts empty
				t.Fatal(err)
			}
			return newRedis(t, srv.URL)
		})
	})
}
