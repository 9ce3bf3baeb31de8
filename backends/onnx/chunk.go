package onnx

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/chorusml/chorus/protocol"
)

// Long-text combinations (LongText.Combine).
const (
	// CombineMeanLogits averages the windows' logits, each weighted by its
	// real tokens (special tokens and padding excluded).
	CombineMeanLogits = "mean_logits"
	// CombineMaxProbs takes, per label, the highest probability any window
	// gives it, under the model's activation: for a sigmoid (multi-label)
	// model the row is logit(max p) so that the sigmoid gives max p back;
	// otherwise log(max p), which softmax renormalises.
	CombineMaxProbs = "max_probs"
)

// LongText makes Predict classify a text longer than one window as a
// whole: it is cut into overlapping windows of tokens, each window gets
// the special tokens the model's tokenizer adds to a single text (as
// transformers' tokenizer does to each overflowing window), the windows
// run as one batch (through the batcher when there is one), and their
// logits are combined into one row, before any temperature or activation.
type LongText struct {
	// Window is the tokens of one window, special tokens included.
	// Default (0): the model's max length; more is an error.
	Window int
	// Stride is how many tokens consecutive windows share (transformers'
	// stride). Must be less than the window's real tokens.
	Stride int
	// Combine is CombineMeanLogits (default) or CombineMaxProbs.
	Combine string
	// Cache, when set, keeps each window's logits, so that texts sharing
	// windows (a document resent with a new ending, a quoted passage) score
	// only the windows not seen before. Default nil: every window is scored.
	Cache WindowCache
}

// WindowCache stores window logits under the model's (windowing)
// fingerprint and a key naming the window's token ids. Get returns a nil
// row for each miss, and an error when the store cannot answer (every
// window is then scored); Set is best effort and must not block.
type WindowCache interface {
	Get(ctx context.Context, fingerprint string, k int, keys []string) ([][]float32, error)
	Set(fingerprint string, rows map[string][]float32)
}

// chunker cuts texts into windows.
type chunker struct {
	raw *hfTokenizer // no truncation, no special tokens
	// prefix and suffix are the special tokens around a single text.
	prefix, suffix []int64
	content        int // real tokens per window
	stride         int
	combine        string
	sigmoid        bool
	cache          WindowCache
	fp             string // the model's fingerprint, windowing included
}

// noTruncation is a length no text reaches: the raw tokenizer never cuts.
const noTruncation = 1 << 30

// newChunker checks o against the model and finds its special tokens by
// encoding a probe text with and without them.
func (m *Model) newChunker(tokenizerJSON []byte, o LongText, special bool) (*chunker, error) {
	window := o.Window
	if window == 0 {
		window = m.meta.MaxLength
	}
	if window > m.meta.MaxLength || window < 1 {
		return nil, fmt.Errorf("long text: window %d: want 1..%d (the model's max length)", window, m.meta.MaxLength)
	}
	combine := o.Combine
	if combine == "" {
		combine = CombineMeanLogits
	}
	if combine != CombineMeanLogits && combine != CombineMaxProbs {
		return nil, fmt.Errorf("long text: combine %q: want %s or %s", combine, CombineMeanLogits, CombineMaxProbs)
	}
	raw, err := newHFTokenizer(tokenizerJSON, noTruncation, false, false)
	if err != nil {
		return nil, fmt.Errorf("long text: %w", err)
	}
	c := &chunker{raw: raw, stride: o.Stride, combine: combine, sigmoid: m.meta.Activation == protocol.ActivationSigmoid, cache: o.Cache}
	if special {
		const probe = "window probe"
		plain, err := raw.encode(probe, "", false, false)
		if err != nil {
			raw.close()
			return nil, fmt.Errorf("long text: %w", err)
		}
		full, err := m.tok.encode(probe, "", false, false)
		if err != nil {
			raw.close()
			return nil, fmt.Errorf("long text: %w", err)
		}
		at := index(full.ids, plain.ids)
		if at < 0 {
			raw.close()
			return nil, errors.New("long text: the tokenizer's special tokens do not surround a single text: cannot window it")
		}
		c.prefix, c.suffix = full.ids[:at], full.ids[at+len(plain.ids):]
	}
	c.content = window - len(c.prefix) - len(c.suffix)
	if c.content < 1 || c.stride < 0 || c.stride >= c.content {
		raw.close()
		return nil, fmt.Errorf("long text: stride %d: want 0..%d (a window of %d holds %d real tokens)", c.stride, c.content-1, window, c.content)
	}
	return c, nil
}

// index is where sub starts in s, or -1.
func index(s, sub []int64) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if slices.Equal(s[i:i+len(sub)], sub) {
			return i
		}
	}
	return -1
}

// fingerprint folds the windowing into the model's fingerprint: cached
// logits of a chunked model are not those of a truncating one.
func (c *chunker) fingerprint(fp string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nlong_text content=%d stride=%d combine=%s prefix=%v suffix=%v\n", fp, c.content, c.stride, c.combine, c.prefix, c.suffix)
	c.fp = hex.EncodeToString(h.Sum(nil))
	return c.fp
}

// windows cuts text into the encodings of its windows; each window's real
// tokens are its weight.
func (c *chunker) windows(text string, typeIDs bool) ([]encoding, error) {
	enc, err := c.raw.encode(text, "", false, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", protocol.ErrInvalidInput, err)
	}
	ids := enc.ids
	var out []encoding
	for start := 0; ; start += c.content - c.stride {
		end := min(start+c.content, len(ids))
		w := slices.Concat(c.prefix, ids[start:end], c.suffix)
		if len(w) == 0 {
			return nil, fmt.Errorf("tokenizer produced no tokens: %w", protocol.ErrInvalidInput)
		}
		e := encoding{ids: w, mask: ones(len(w))}
		if typeIDs {
			e.typeIDs = make([]int64, len(w))
		}
		out = append(out, e)
		if end >= len(ids) {
			return out, nil
		}
	}
}

func ones(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

// TokenWindows is the token ids of each window text is cut into, special
// tokens included, as transformers' tokenizer returns them with
// return_overflowing_tokens; one window, as Tokenize would give it, for a
// text that fits. Nil when the model does not chunk.
func (m *Model) TokenWindows(text string) ([][]int64, error) {
	if m.chunk == nil {
		return nil, nil
	}
	w, err := m.chunk.windows(text, false)
	if err != nil {
		return nil, err
	}
	out := make([][]int64, len(w))
	for i, e := range w {
		out[i] = e.ids
	}
	return out, nil
}

// Windows says how many windows each text is cut into (1 for a text that
// fits one window; 1 for every text when the model does not chunk). It
// tokenizes each text: a prediction reports the counts of the texts it
// scored (protocol.WindowCounts) so that they need not be counted again.
func (m *Model) Windows(texts []string) ([]int, error) {
	out := make([]int, len(texts))
	for i, t := range texts {
		out[i] = 1
		if m.chunk == nil {
			continue
		}
		n, err := m.chunk.count(t)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i, err)
		}
		out[i] = n
	}
	return out, nil
}

// count is len(windows(text)), from its token count alone.
func (c *chunker) count(text string) (int, error) {
	enc, err := c.raw.encode(text, "", false, false)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", protocol.ErrInvalidInput, err)
	}
	n := len(enc.ids)
	switch {
	case n == 0 && len(c.prefix)+len(c.suffix) == 0:
		return 0, fmt.Errorf("tokenizer produced no tokens: %w", protocol.ErrInvalidInput)
	case n <= c.content:
		return 1, nil
	}
	step := c.content - c.stride // windows start every step tokens until one reaches the end
	return 1 + (n-c.content+step-1)/step, nil
}

// predictChunked scores every window of every text in one call and
// combines each text's windows into one row; it reports each text's
// windows to the request's protocol.WindowCounts.
func (m *Model) predictChunked(ctx context.Context, texts []string) (Prediction, error) {
	var encs []encoding
	spans := make([][2]int, len(texts)) // each text's windows: encs[lo:hi]
	counts := protocol.WindowCountsFrom(ctx)
	for i, t := range texts {
		w, err := m.chunk.windows(t, m.withTypes)
		if err != nil {
			return Prediction{}, fmt.Errorf("text %d: %w", i, err)
		}
		counts.Report(t, len(w))
		spans[i] = [2]int{len(encs), len(encs) + len(w)}
		encs = append(encs, w...)
	}
	rows, err := m.scoreWindows(ctx, encs)
	if err != nil {
		return Prediction{}, err
	}
	out := make(protocol.Logits, len(texts))
	for i, s := range spans {
		weights := make([]float64, 0, s[1]-s[0])
		for _, e := range encs[s[0]:s[1]] {
			weights = append(weights, float64(len(e.ids)-len(m.chunk.prefix)-len(m.chunk.suffix)))
		}
		out[i] = m.chunk.combineRows(rows[s[0]:s[1]], weights)
	}
	return Prediction{Logits: out}, nil
}

// scoreWindows scores windows, each distinct window once, taking what the
// window cache holds and storing what it did not; a request that opted out
// of caching (protocol.WithoutCache) neither reads nor writes it.
func (m *Model) scoreWindows(ctx context.Context, encs []encoding) (protocol.Logits, error) {
	c := m.chunk
	if c.cache == nil || protocol.CacheBypassed(ctx) {
		p, err := m.predict(ctx, len(encs), func(i int) (encoding, error) { return encs[i], nil })
		return p.Logits, err
	}
	keys := make([]string, len(encs))
	for i, e := range encs {
		keys[i] = windowKey(e.ids)
	}
	k := len(m.meta.Labels)
	rows, err := c.cache.Get(ctx, c.fp, k, keys)
	if err != nil || len(rows) != len(keys) {
		rows = make([][]float32, len(keys)) // the cache fails open
	}
	var miss []int // the first window of each distinct missing key
	seen := map[string]bool{}
	for i, r := range rows {
		if r == nil && !seen[keys[i]] {
			seen[keys[i]] = true
			miss = append(miss, i)
		}
	}
	if len(miss) > 0 {
		p, err := m.predict(ctx, len(miss), func(j int) (encoding, error) { return encs[miss[j]], nil })
		if err != nil {
			return nil, err
		}
		fresh := make(map[string][]float32, len(miss))
		for j, i := range miss {
			fresh[keys[i]] = p.Logits[j]
		}
		for i, r := range rows {
			if r == nil {
				rows[i] = fresh[keys[i]]
			}
		}
		c.cache.Set(c.fp, fresh)
	}
	return rows, nil
}

// windowKey names a window by its token ids.
func windowKey(ids []int64) string {
	h := sha256.New()
	b := make([]byte, 8)
	for _, id := range ids {
		binary.LittleEndian.PutUint64(b, uint64(id))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// combineRows combines one text's window logits.
func (c *chunker) combineRows(rows protocol.Logits, weights []float64) []float32 {
	k := len(rows[0])
	out := make([]float32, k)
	if len(rows) == 1 {
		copy(out, rows[0])
		return out
	}
	if c.combine == CombineMeanLogits {
		total := 0.0
		for _, w := range weights {
			total += max(w, 0)
		}
		for j := range k {
			s := 0.0
			for i, r := range rows {
				s += max(weights[i], 0) * float64(r[j])
			}
			out[j] = float32(s / max(total, 1))
		}
		return out
	}
	best := make([]float64, k)
	for _, r := range rows {
		p := probs(r, c.sigmoid)
		for j := range k {
			best[j] = max(best[j], p[j])
		}
	}
	for j, p := range best {
		p = min(max(p, 1e-30), 1-1e-7)
		if c.sigmoid {
			out[j] = float32(math.Log(p / (1 - p)))
		} else {
			out[j] = float32(math.Log(p))
		}
	}
	return out
}

// probs is a row's probabilities under the model's activation.
func probs(r []float32, sigmoid bool) []float64 {
	p := make([]float64, len(r))
	if sigmoid {
		for j, v := range r {
			p[j] = 1 / (1 + math.Exp(-float64(v)))
		}
		return p
	}
	m := float64(slices.Max(r))
	s := 0.0
	for j, v := range r {
		p[j] = math.Exp(float64(v) - m)
		s += p[j]
	}
	for j := range p {
		p[j] /= s
	}
	return p
}

func (c *chunker) close() {
	if c != nil {
		c.raw.close()
	}
}
