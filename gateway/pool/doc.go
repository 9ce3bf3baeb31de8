// Package pool spreads a model's requests over its replicas, after Caddy's
// reverse proxy: selection policies (selection.go), passive ejection and
// active health checks (health.go), a circuit breaker and an in-flight bound
// per replica (replica.go), and retries to another replica bounded by count
// and time (pool.go). It sees replicas only as protocol.Predictor.
package pool
