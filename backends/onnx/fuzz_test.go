package onnx_test

import (
	"context"
	"sync"
	"testing"

	"github.com/chorusml/chorus/backends/onnx"
)

var (
	fuzzOnce  sync.Once
	fuzzModel *onnx.Model
	fuzzErr   error
)

// Any text goes through the tokenizer (Rust, across cgo) and the graph:
// no crash, [CLS] ... [SEP] within max_length, finite logits of the model's
// width. NUL bytes, invalid UTF-8 and control characters included.
func FuzzTokenizeAndPredict(f *testing.F) {
	for _, s := range []string{"Hello, my dog is cute", "", "\x00", "zero\u200bwidth and null\x00byte", "\xff\xfe invalid utf-8",
		"我喜欢这部电影", "😍🔥👍", "   ", "[CLS] [SEP] [PAD] [MASK]", "a\tb\nc\rd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		fuzzOnce.Do(func() {
			fuzzModel, fuzzErr = rt.Open(models+"/sst2-tiny-a", onnx.Options{MaxLength: 64, IntraOpThreads: 1})
		})
		if fuzzErr != nil {
			t.Fatal(fuzzErr)
		}
		ids, err := fuzzModel.Tokenize(text)
		if err != nil {
			t.Fatalf("tokenize %q: %v", text, err)
		}
		if len(ids) < 2 || len(ids) > 64 || ids[0] != 101 || ids[len(ids)-1] != 102 {
			t.Fatalf("tokenize %q: %v", text, ids)
		}
		out, err := fuzzModel.Predict(context.Background(), []string{text})
		if err != nil || len(out) != 1 || len(out[0]) != 2 {
			t.Fatalf("predict %q: %v %v", text, out, err)
		}
		for _, v := range out[0] {
			if v != v { // NaN
				t.Fatalf("predict %q: NaN logits", text)
			}
		}
	})
}

var (
	pairOnce  sync.Once
	pairModel *onnx.Model
	pairErr   error
)

// Any pair of texts goes through the byte-level BPE tokenizer (which keeps
// every byte, NUL included) and the graph: <s> ... </s> within max_length,
// finite logits of the model's width.
func FuzzTokenizePairs(f *testing.F) {
	for _, p := range [][2]string{{"A man is eating food.", "A man is eating a meal."}, {"", ""}, {"\x00", "a\x00b"},
		{"\xff\xfe invalid", "😍🔥"}, {"<s></s>", "<mask>"}, {"only the first", ""}} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		pairOnce.Do(func() {
			pairModel, pairErr = rt.Open(models+"/nli-tiny", onnx.Options{MaxLength: 64, IntraOpThreads: 1})
		})
		if pairErr != nil {
			t.Fatal(pairErr)
		}
		ids, _, err := pairModel.TokenizePair(a, b)
		if err != nil {
			t.Fatalf("tokenize (%q, %q): %v", a, b, err)
		}
		if len(ids) < 2 || len(ids) > 64 || ids[0] != 0 || ids[len(ids)-1] != 2 {
			t.Fatalf("tokenize (%q, %q): %v", a, b, ids)
		}
		out, err := pairModel.PredictPairs(context.Background(), [][2]string{{a, b}})
		if err != nil || len(out) != 1 || len(out[0]) != 3 {
			t.Fatalf("predict (%q, %q): %v %v", a, b, out, err)
		}
		for _, v := range out[0] {
			if v != v { // NaN
				t.Fatalf("predict (%q, %q): NaN logits", a, b)
			}
		}
	})
}
