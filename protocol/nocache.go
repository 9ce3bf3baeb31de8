package protocol

import "context"

type noCacheKey struct{}

// WithoutCache returns ctx marked as a request that opted out of caching
// (Cache-Control: no-cache or no-store, over HTTP or gRPC): a backend that
// keeps a cache of its own (the ONNX backend's cache of long-text windows)
// neither reads nor writes it for the calls made with ctx, as the gateway
// neither reads nor writes its logits cache for them.
func WithoutCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, noCacheKey{}, true)
}

// CacheBypassed reports whether ctx is marked by WithoutCache.
func CacheBypassed(ctx context.Context) bool {
	b, _ := ctx.Value(noCacheKey{}).(bool)
	return b
}
