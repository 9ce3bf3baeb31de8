package onnx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/protocol"
)

type windowCase struct {
	ModelDir string    `json:"model_dir"`
	Window   int       `json:"window"`
	Stride   int       `json:"stride"`
	Text     string    `json:"text"`
	Windows  [][]int64 `json:"windows"`
}

func windowCases(t *testing.T) []windowCase {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/long-text/windows.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []windowCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

// TestTokenWindowsMatchTransformers: the windows are token for token those
// transformers' tokenizer cuts (return_overflowing_tokens, stride), special
// tokens per window included, for WordPiece and byte-level BPE tokenizers.
func TestTokenWindowsMatchTransformers(t *testing.T) {
	for _, c := range windowCases(t) {
		t.Run(fmt.Sprintf("%s/%d/%d/%d", filepath.Base(c.ModelDir), c.Window, c.Stride, len(c.Windows)), func(t *testing.T) {
			m, err := rt.Open(filepath.Join("../..", c.ModelDir), onnx.Options{LongText: &onnx.LongText{Window: c.Window, Stride: c.Stride}})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			got, err := m.TokenWindows(c.Text)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.Windows) {
				t.Fatalf("%d windows, transformers %d", len(got), len(c.Windows))
			}
			for i := range got {
				if !slices.Equal(got[i], c.Windows[i]) {
					t.Fatalf("window %d:\n got %v\nwant %v", i, got[i], c.Windows[i])
				}
			}
			n, err := m.Windows([]string{c.Text})
			if err != nil || n[0] != len(c.Windows) {
				t.Errorf("Windows: %v %v, want %d", n, err, len(c.Windows))
			}
		})
	}
}

// TestChunkedLogits: a text that fits one window scores exactly as when
// truncating; a longer one is the real-token-weighted mean of its windows'
// logits (mean_logits) or the per-label max probability (max_probs), each
// window scored as a text of its own.
func TestChunkedLogits(t *testing.T) {
	const dir = "../../models/demo-sentiment"
	trunc, err := rt.Open(dir, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer trunc.Close()
	mean, err := rt.Open(dir, onnx.Options{LongText: &onnx.LongText{Window: 64, Stride: 16}})
	if err != nil {
		t.Fatal(err)
	}
	defer mean.Close()
	maxp, err := rt.Open(dir, onnx.Options{LongText: &onnx.LongText{Window: 64, Stride: 16, Combine: onnx.CombineMaxProbs}})
	if err != nil {
		t.Fatal(err)
	}
	defer maxp.Close()
	if mean.Metadata().Fingerprint == trunc.Metadata().Fingerprint || mean.Metadata().Fingerprint == maxp.Metadata().Fingerprint {
		t.Error("the fingerprint does not say how texts are windowed: cached logits would mix")
	}

	short := "Hello, my dog is cute"
	long := strings.Repeat("The train left at noon. ", 40) + "The ending was wonderful."
	ctx := context.Background()
	want, err := trunc.Predict(ctx, []string{short})
	if err != nil {
		t.Fatal(err)
	}
	got, err := mean.Predict(ctx, []string{short, long})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0], want[0]) {
		t.Errorf("one window: %v, truncating %v", got[0], want[0])
	}

	windows, err := mean.TokenWindows(long)
	if err != nil || len(windows) < 3 {
		t.Fatalf("%d windows, %v", len(windows), err)
	}
	rows, err := mean.PredictIDs(ctx, windows)
	if err != nil {
		t.Fatal(err)
	}
	var wsum float64
	wmean := make([]float64, 2)
	best := make([]float64, 2)
	for i, r := range rows {
		w := float64(len(windows[i]) - 2) // less [CLS] and [SEP]
		wsum += w
		p := calibration.Softmax(r, 1)
		for j := range r {
			wmean[j] += w * float64(r[j])
			best[j] = max(best[j], p[j])
		}
	}
	for j := range wmean {
		if d := math.Abs(wmean[j]/wsum - float64(got[1][j])); d > 1e-5 {
			t.Errorf("mean_logits label %d: %v, want %v", j, got[1][j], wmean[j]/wsum)
		}
	}
	gotMax, err := maxp.Predict(ctx, []string{long})
	if err != nil {
		t.Fatal(err)
	}
	for j := range best {
		// log(max p): softmax renormalises the per-label maxima.
		if d := math.Abs(math.Log(best[j]) - float64(gotMax[0][j])); d > 1e-4 {
			t.Errorf("max_probs label %d: %v, want log %v", j, gotMax[0][j], best[j])
		}
	}
}

func TestLongTextOptions(t *testing.T) {
	for _, o := range []onnx.LongText{{Window: 1000}, {Window: 64, Stride: 62}, {Stride: -1}, {Combine: "median"}} {
		if m, err := rt.Open("../../models/demo-sentiment", onnx.Options{LongText: &o}); err == nil {
			m.Close()
			t.Errorf("%+v accepted", o)
		}
	}
}

// mapWindows is an in-memory WindowCache that counts what it stored and
// the lookups it answered.
type mapWindows struct {
	mu     sync.Mutex
	rows   map[string][]float32
	stored int
	gets   int
}

func (c *mapWindows) Get(_ context.Context, fp string, k int, keys []string) ([][]float32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	out := make([][]float32, len(keys))
	for i, key := range keys {
		if r, ok := c.rows[fp+key]; ok && len(r) == k {
			out[i] = r
		}
	}
	return out, nil
}

func (c *mapWindows) Set(fp string, rows map[string][]float32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, r := range rows {
		c.rows[fp+key] = r
		c.stored++
	}
}

// TestWindowCache: a document resent with a new ending scores only its
// last window; the answers are the same as without the cache.
func TestWindowCache(t *testing.T) {
	const dir = "../../models/demo-sentiment"
	store := &mapWindows{rows: map[string][]float32{}}
	cached, err := rt.Open(dir, onnx.Options{LongText: &onnx.LongText{Window: 64, Stride: 16, Cache: store}})
	if err != nil {
		t.Fatal(err)
	}
	defer cached.Close()
	plain, err := rt.Open(dir, onnx.Options{LongText: &onnx.LongText{Window: 64, Stride: 16}})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if cached.Metadata().Fingerprint != plain.Metadata().Fingerprint {
		t.Error("the cache changed the fingerprint")
	}
	body := strings.Repeat("The train left at noon. ", 40)
	first, second := body+"The ending was wonderful.", body+"The ending was terrible."
	w, err := cached.TokenWindows(first)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, doc := range []string{first, second, second} {
		got, err := cached.Predict(ctx, []string{doc})
		if err != nil {
			t.Fatal(err)
		}
		want, err := plain.Predict(ctx, []string{doc})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got[0], want[0]) {
			t.Errorf("document %d: cached %v, uncached %v", i, got[0], want[0])
		}
	}
	// The first document stores its distinct windows; the second only its
	// last (the others are the first's); the third nothing.
	distinct := map[string]bool{}
	for _, ids := range w {
		distinct[fmt.Sprint(ids)] = true
	}
	if want := len(distinct) + 1; store.stored != want {
		t.Errorf("%d windows stored, want %d (the first document's %d distinct windows, then one)", store.stored, want, len(distinct))
	}
}

// TestWindowCacheNoCache: a request that opted out of caching
// (protocol.WithoutCache, as the gateway marks Cache-Control: no-cache)
// neither reads the window cache (its stored rows, poisoned here, are not
// used) nor writes it.
func TestWindowCacheNoCache(t *testing.T) {
	store := &mapWindows{rows: map[string][]float32{}}
	m, err := rt.Open("../../models/demo-sentiment", onnx.Options{LongText: &onnx.LongText{Window: 64, Stride: 16, Cache: store}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	doc := strings.Repeat("The train left at noon. ", 40) + "The ending was wonderful."
	noCache := protocol.WithoutCache(context.Background())
	want, err := m.Predict(noCache, []string{doc})
	if err != nil {
		t.Fatal(err)
	}
	if store.gets != 0 || store.stored != 0 {
		t.Fatalf("no-cache request: %d lookups, %d windows stored; want none", store.gets, store.stored)
	}
	if _, err := m.Predict(context.Background(), []string{doc}); err != nil {
		t.Fatal(err)
	}
	if store.gets != 1 || store.stored == 0 {
		t.Fatalf("cached request: %d lookups, %d windows stored", store.gets, store.stored)
	}
	stored := store.stored
	for key := range store.rows {
		store.rows[key] = []float32{99, -99}
	}
	got, err := m.Predict(noCache, []string{doc})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got[0], want[0]) || store.gets != 1 || store.stored != stored {
		t.Errorf("no-cache request with the windows stored: %v (want %v), %d lookups, %d stored (want 1 and %d)", got[0], want[0], store.gets, store.stored, stored)
	}
	if poisoned, _ := m.Predict(context.Background(), []string{doc}); poisoned[0][0] < 98 {
		t.Errorf("the poisoned rows were not what a cached request reads: %v", poisoned[0])
	}
}

// TestWindowCounts: Windows counts, from the token count alone, as many
// windows as TokenWindows cuts, at every length around the window
// boundaries; a prediction reports each text's count to the request's
// protocol.WindowCounts, so that the gateway does not tokenize it again.
func TestWindowCounts(t *testing.T) {
	m, err := rt.Open("../../models/demo-sentiment", onnx.Options{LongText: &onnx.LongText{Window: 32, Stride: 8}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var texts []string
	want := map[string]int{}
	for n := 0; n <= 120; n++ {
		text := strings.Repeat("word ", n)
		w, err := m.TokenWindows(text)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Windows([]string{text})
		if err != nil || got[0] != len(w) {
			t.Fatalf("%d words: Windows %v %v, TokenWindows cut %d", n, got, err, len(w))
		}
		texts, want[text] = append(texts, text), len(w)
	}
	if want[texts[len(texts)-1]] < 4 {
		t.Fatalf("the longest text takes %d windows: the lengths do not cross the boundaries", want[texts[len(texts)-1]])
	}
	counts := &protocol.WindowCounts{}
	if _, err := m.Predict(protocol.WithWindowCounts(context.Background(), counts), texts); err != nil {
		t.Fatal(err)
	}
	for _, text := range texts {
		if n, ok := counts.Count(text); !ok || n != want[text] {
			t.Errorf("%d characters: reported %d (%v), want %d", len(text), n, ok, want[text])
		}
	}
}
