package protocol

import (
	"context"
	"slices"
	"sync"
)

// Truncation is one backend call's record of the inputs cut to the
// model's max length. The gateway puts a fresh one in the context of each
// call it makes (WithTruncation); a backend that truncates reports the
// indices, within the batch it was given, of the inputs it cut
// (TruncationFrom returns nil when there is none, and a nil *Truncation
// ignores reports). A backend that cannot tell reports nothing.
type Truncation struct {
	// Refuse asks the backend to fail with ErrTooLarge, naming the first
	// input longer than the model takes, rather than cut it (the request's
	// parameters.truncate false).
	Refuse bool

	mu  sync.Mutex
	cut []int
}

type truncationKey struct{}

// WithTruncation returns ctx carrying t.
func WithTruncation(ctx context.Context, t *Truncation) context.Context {
	return context.WithValue(ctx, truncationKey{}, t)
}

// TruncationFrom returns the Truncation WithTruncation stored, or nil.
func TruncationFrom(ctx context.Context) *Truncation {
	t, _ := ctx.Value(truncationKey{}).(*Truncation)
	return t
}

// Refusing reports whether over-length inputs are to be refused.
func (t *Truncation) Refusing() bool { return t != nil && t.Refuse }

// Report records that the inputs at these indices were cut.
func (t *Truncation) Report(indices []int) {
	if t == nil || len(indices) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, i := range indices {
		if !slices.Contains(t.cut, i) {
			t.cut = append(t.cut, i)
		}
	}
	slices.Sort(t.cut)
}

// Cut returns the indices reported, ascending.
func (t *Truncation) Cut() []int {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.cut)
}
