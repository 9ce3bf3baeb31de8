package protocol

import (
	"context"
	"sync"
)

// WindowCounts is one request's record of how many windows a backend that
// classifies long texts in windows cut each text into. The gateway puts a
// fresh one in the context of a chunking model's prediction; the backend
// reports the count of every text it tokenized (Report), and the answer's
// window counts read them (Count) instead of tokenizing each text again.
// A nil *WindowCounts ignores reports and knows no count. It is safe for
// concurrent use (a pool may try another replica while one still runs).
type WindowCounts struct {
	mu sync.Mutex
	n  map[string]int
}

type windowCountsKey struct{}

// WithWindowCounts returns ctx carrying w.
func WithWindowCounts(ctx context.Context, w *WindowCounts) context.Context {
	return context.WithValue(ctx, windowCountsKey{}, w)
}

// WindowCountsFrom returns the WindowCounts WithWindowCounts stored, or nil.
func WindowCountsFrom(ctx context.Context) *WindowCounts {
	w, _ := ctx.Value(windowCountsKey{}).(*WindowCounts)
	return w
}

// Report records that text was cut into n windows.
func (w *WindowCounts) Report(text string, n int) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == nil {
		w.n = map[string]int{}
	}
	w.n[text] = n
}

// Count is the windows reported for text, and whether any were.
func (w *WindowCounts) Count(text string) (int, bool) {
	if w == nil {
		return 0, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n, ok := w.n[text]
	return n, ok
}
