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
	// ErrUnavailable: the backend cannot serve now (503).
	ErrUnavailable = errors.New("backend unavailable")
)
