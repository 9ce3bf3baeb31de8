package telemetry

import "google.golang.org/grpc/metadata"

// MetadataCarrier lets a propagator read and write gRPC metadata, so that
// a trace continues across gRPC calls as it does across HTTP ones. Keys stay
// lowercase, as HTTP/2 requires (propagation.HeaderCarrier would
// canonicalise them).
type MetadataCarrier metadata.MD

// Get returns the first value of key, or "".
func (c MetadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces key's values with value.
func (c MetadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }

// Keys lists the keys present.
func (c MetadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
