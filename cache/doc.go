// Package cache stores raw logits per text: the key scheme, the binary value
// format, and two stores behind the gateway's small LogitsCache interface —
// Redis (go-redis, fail-open: short deadlines, a circuit breaker,
// asynchronous bounded writes) and an in-process LRU for when no Redis is
// configured. It imports nothing of Chorus.
package cache
