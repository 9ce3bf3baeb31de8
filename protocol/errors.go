package protocol

import "errors"

// Sentinel errors. Wrap them with context (fmt.Errorf("...: %w", ErrX)); the
// gateway maps them to HTTP statuses in one place.
var (
	// ErrInvalidInput: the request is malformed or breaks the protocol (400).
	ErrInvalidInput = errors.New("invalid input")
	// ErrTooLarge: the request exceeds a configured limit (413).
	ErrTooLarge = errors.New("request too large")
	// ErrModelNotFound: no model or version of that name (404).
	ErrModelNotFound = errors.New("model not found")
	// ErrNotReady: the model exists but cannot serve yet, or any more (503).
	ErrNotReady = errors.New("model not ready")
	// ErrUnavailable: the backend cannot serve now: closed, unreachable,
	// overloaded, or answering 503 (503). Another replica may serve.
	ErrUnavailable = errors.New("backend unavailable")
	// ErrBadGateway: the backend answered something that breaks the
	// protocol: garbage, truncated JSON, the wrong number of logits (502).
	ErrBadGateway = errors.New("bad gateway")
	// ErrGatewayTimeout: a backend attempt ran out of its own time (504).
	ErrGatewayTimeout = errors.New("backend timed out")
	// ErrUnauthorized: no valid API key (401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the API key may not use this model (403).
	ErrForbidden = errors.New("forbidden")
	// ErrRateLimited: the API key is over its rate (429).
	ErrRateLimited = errors.New("rate limited")
	// ErrOverloaded: the server is at its limit of requests in flight (503).
	ErrOverloaded = errors.New("overloaded")
	// ErrNotImplemented: the model has no such verb, as KServe's :explain
	// for a model without an explainer (501).
	ErrNotImplemented = errors.New("not implemented")
)

// Retryable reports whether another replica might succeed where this error
// came from: the backend, not the request, was at fault.
func Retryable(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadGateway) || errors.Is(err, ErrGatewayTimeout)
}
