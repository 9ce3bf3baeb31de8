package protocol

import "context"

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id, so that backends can
// pass it on to remote predictors (X-Request-Id, V2 "id").
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the id WithRequestID stored, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
