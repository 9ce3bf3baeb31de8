package cache

import "time"

// Defaults of the stores. The registry (gateway/config) fills its cache
// defaults from these, so each value is written once.
const (
	// DefaultTTL is how long an entry lives unless its model says otherwise.
	DefaultTTL = 24 * time.Hour
	// DefaultNamespace prefixes every key.
	DefaultNamespace = "chorus"
	// DefaultTimeout bounds every Redis call.
	DefaultTimeout = 20 * time.Millisecond
	// DefaultWriteQueue bounds the batches of fills waiting to be written.
	DefaultWriteQueue = 1024
	// DefaultBreakerTimeout is how long Redis is skipped after repeated
	// failures before one probe is let through.
	DefaultBreakerTimeout = time.Second
	// DefaultMaxEntries bounds the in-process LRU.
	DefaultMaxEntries = 100_000
)
