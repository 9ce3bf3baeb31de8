// Package cachetest is the contract suite every logits store passes (Redis,
// the in-process LRU), like backendtest for backends.
package cachetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chorusml/chorus/internal/proctest"
)

// Store is the contract: Get returns one value per key (nil when absent)
// or an error when the store cannot answer; Set and Delete are best effort,
// may apply asynchronously, and never block; a TTL of 0 means the store's
// default; Close flushes what is queued (Redis' own test checks that).
// Safe for concurrent use.
type Store interface {
	Get(ctx context.Context, keys []string) ([][]byte, error)
	Set(entries map[string][]byte, ttl time.Duration)
	Delete(keys []string)
	Close() error
}

// Run checks a store made fresh (and empty) by open for each subtest.
func Run(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	// visible waits for asynchronous writes to land.
	visible := func(t *testing.T, s Store, key, want string) {
		t.Helper()
		proctest.Eventually(t, 5*time.Second, fmt.Sprintf("%s = %q", key, want), func() bool {
			got, err := s.Get(ctx, []string{key})
			return err == nil && string(got[0]) == want
		})
	}
	t.Run("empty and absent", func(t *testing.T) {
		s := open(t)
		got, err := s.Get(ctx, nil)
		if err != nil || len(got) != 0 {
			t.Fatalf("Get(no keys) = %q, %v", got, err)
		}
		got, err = s.Get(ctx, []string{"absent-a", "absent-b"})
		if err != nil || len(got) != 2 || got[0] != nil || got[1] != nil {
			t.Fatalf("Get(absent) = %q, %v; want two nils", got, err)
		}
	})
	t.Run("set get delete in key order", func(t *testing.T) {
		s := open(t)
		s.Set(map[string][]byte{"k1": []byte("v1"), "k2": {0, 1, 2, 255}}, time.Minute)
		visible(t, s, "k1", "v1")
		visible(t, s, "k2", "\x00\x01\x02\xff")
		got, err := s.Get(ctx, []string{"k2", "absent", "k1", "k2"})
		if err != nil || string(got[0]) != "\x00\x01\x02\xff" || got[1] != nil || string(got[2]) != "v1" || string(got[3]) != string(got[0]) {
			t.Fatalf("Get = %q, %v", got, err)
		}
		s.Delete([]string{"k1"})
		proctest.Eventually(t, 5*time.Second, "k1 deleted", func() bool {
			got, err := s.Get(ctx, []string{"k1"})
			return err == nil && got[0] == nil
		})
		visible(t, s, "k2", "\x00\x01\x02\xff")
	})
	t.Run("overwrite and default TTL", func(t *testing.T) {
		s := open(t)
		s.Set(map[string][]byte{"k": []byte("old")}, 0)
		visible(t, s, "k", "old")
		s.Set(map[string][]byte{"k": []byte("new")}, 0)
		visible(t, s, "k", "new")
	})
	t.Run("concurrent use", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					key := fmt.Sprintf("g%d-%d", g, i)
					s.Set(map[string][]byte{key: []byte(key)}, time.Minute)
					if _, err := s.Get(ctx, []string{key, "absent"}); err != nil {
						t.Errorf("Get: %v", err)
						return
					}
				}
			}()
		}
		wg.Wait()
		visible(t, s, "g7-49", "g7-49")
	})
}
