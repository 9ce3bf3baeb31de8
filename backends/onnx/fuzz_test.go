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
