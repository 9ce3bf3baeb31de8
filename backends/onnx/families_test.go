package onnx_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/protocol"
)

// longText is far over every fixture's limit in any vocabulary: 10,000
// words, each at least one token.
var longText = strings.Repeat("the movie was good ", 2500)

// No text of any length makes an error, alone, in a batch, or in a pair:
// every fixture truncates to its safe length, reports the truncation and
// answers finite logits.
func TestTenThousandTokens(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			m := open(t, name, onnx.Options{IntraOpThreads: 1})
			md := m.Metadata()
			ids, err := m.Tokenize(longText)
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != md.MaxLength {
				t.Fatalf("%d tokens, want the max length %d", len(ids), md.MaxLength)
			}
			ctx := context.Background()
			alone, err := m.PredictTexts(ctx, []string{longText})
			if err != nil {
				t.Fatalf("alone: %v", err)
			}
			batch, err := m.PredictTexts(ctx, []string{"short", longText, "", longText + " more"})
			if err != nil {
				t.Fatalf("in a batch: %v", err)
			}
			pairs, err := m.PredictTextPairs(ctx, [][2]string{{longText, "short"}, {"a", "b"}, {longText, longText}})
			if err != nil {
				t.Fatalf("pairs: %v", err)
			}
			for _, c := range []struct {
				what      string
				p         onnx.Prediction
				truncated []int
			}{{"alone", alone, []int{0}}, {"batch", batch, []int{1, 3}}, {"pairs", pairs, []int{0, 2}}} {
				if !slices.Equal(c.p.Truncated, c.truncated) {
					t.Errorf("%s: truncated %v, want %v", c.what, c.p.Truncated, c.truncated)
				}
				for i, row := range c.p.Logits {
					if len(row) != len(md.Labels) {
						t.Fatalf("%s row %d: %d logits, want %d", c.what, i, len(row), len(md.Labels))
					}
					for _, v := range row {
						if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
							t.Fatalf("%s row %d: logits %v", c.what, i, row)
						}
					}
				}
			}
			if d := backendtest.MaxAbsDiff(batch.Logits[1], f64(alone.Logits[0])); d > backendtest.BatchTolerance {
				t.Errorf("the long text in a batch differs from alone by %.2g", d)
			}
			t.Logf("%s: 10,000-word text (%d tokens kept of max_length %d) answered %v alone, in a batch and in pairs", name, len(ids), md.MaxLength, alone.Logits[0])
		})
	}
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// The length each fixture truncates to is the safe one transformers uses,
// and the activation is the pipeline's default.
func TestSafeLengthAndActivation(t *testing.T) {
	want := map[string]string{"multilabel-tiny": protocol.ActivationSigmoid, "crossencoder-tiny": protocol.ActivationSigmoid}
	for _, name := range fixtures {
		m := open(t, name, onnx.Options{})
		ref := reference(t, name)
		md := m.Metadata()
		if md.MaxLength != ref.MaxLength {
			t.Errorf("%s: max length %d, transformers truncates at %d", name, md.MaxLength, ref.MaxLength)
		}
		act := cmpOr(want[name], protocol.ActivationSoftmax)
		if md.Activation != act || ref.Activation != act {
			t.Errorf("%s: activation %q (reference %q), want %q", name, md.Activation, ref.Activation, act)
		}
	}
	// RoBERTa: 514 positions take 512 tokens; the configured length can
	// lower the limit, never raise it past the positions.
	if got := open(t, "roberta-tiny", onnx.Options{MaxLength: 100}).Metadata().MaxLength; got != 100 {
		t.Errorf("configured 100: max length %d", got)
	}
	for _, name := range []string{"roberta-tiny", "xlmr-tiny"} {
		_, err := rt.Open(filepath.Join(models, name), onnx.Options{MaxLength: 513})
		if err == nil || !strings.Contains(err.Error(), "less padding_idx+1") {
			t.Errorf("%s with max_length 513: %v, want an error naming the position offset", name, err)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// model_max_length: a huge sentinel (transformers' "unset") is ignored, a
// smaller value than the positions wins.
func TestModelMaxLength(t *testing.T) {
	for _, c := range []struct {
		value string
		want  int
	}{{"1000000000000000019884624838656", 512}, {"9223372036854775807", 512}, {"128", 128}} {
		dir := copyWithout(t, "roberta-tiny")
		editJSON(t, filepath.Join(dir, "tokenizer_config.json"), func(m map[string]any) {
			m["model_max_length"] = json.Number(c.value)
		})
		m, err := rt.Open(dir, onnx.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Metadata().MaxLength; got != c.want {
			t.Errorf("model_max_length %s: max length %d, want %d", c.value, got, c.want)
		}
		m.Close()
	}
}

// truncation_side left keeps the end of a long text (camembert-tiny is
// saved that way; its reference ids say what transformers keeps).
func TestTruncationSideLeft(t *testing.T) {
	m := open(t, "camembert-tiny", onnx.Options{})
	right := copyWithout(t, "camembert-tiny")
	editJSON(t, filepath.Join(right, "tokenizer_config.json"), func(m map[string]any) { delete(m, "truncation_side") })
	mr, err := rt.Open(right, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Close()
	text := "first words " + longText + " last words"
	left, _ := m.Tokenize(text)
	rightIDs, _ := mr.Tokenize(text)
	end, _ := m.Tokenize("last words")
	begin, _ := m.Tokenize("first words")
	tail := end[1 : len(end)-1]
	head := begin[1 : len(begin)-1]
	if !slices.Equal(left[len(left)-1-len(tail):len(left)-1], tail) || slices.Equal(rightIDs[len(rightIDs)-1-len(tail):len(rightIDs)-1], tail) {
		t.Errorf("left truncation does not keep the end: %v", left[len(left)-8:])
	}
	if !slices.Equal(rightIDs[1:1+len(head)], head) {
		t.Errorf("right truncation does not keep the start: %v", rightIDs[:8])
	}
	if m.Metadata().Fingerprint == mr.Metadata().Fingerprint {
		t.Error("truncation side does not change the fingerprint")
	}
}

// NUL reaches the tokenizer: byte-level BPE and Unigram vocabularies keep
// it (their reference ids say so), so dropping it would change the ids.
func TestNULReachesTokenizer(t *testing.T) {
	for _, name := range []string{"roberta-tiny", "xlmr-tiny", "albert-tiny", "deberta-v3-tiny", "camembert-tiny", "modernbert-tiny"} {
		m := open(t, name, onnx.Options{})
		with, err := m.Tokenize("a\x00b")
		if err != nil {
			t.Fatal(err)
		}
		without, _ := m.Tokenize("ab")
		if slices.Equal(with, without) {
			t.Errorf("%s: %q and %q tokenize alike (%v): NUL was lost", name, "a\x00b", "ab", with)
		}
	}
}

// Folders with only a SentencePiece model are refused with the way out.
func TestSentencePieceOnlyRefused(t *testing.T) {
	for _, name := range []string{"xlmr-tiny", "albert-tiny", "deberta-v3-tiny", "camembert-tiny"} {
		_, err := rt.Open(copyWithout(t, name, "tokenizer.json"), onnx.Options{})
		if err == nil || !strings.Contains(err.Error(), "scripts/export_onnx.py") || !strings.Contains(err.Error(), "SentencePiece") {
			t.Errorf("%s without tokenizer.json: %v, want a refusal naming scripts/export_onnx.py", name, err)
		}
	}
	// vocab.json + merges.txt of a tokenizer that is not RoBERTa's (GPT-2's
	// has no <s> A </s> framing) is refused, not converted wrongly.
	dir := copyWithout(t, "roberta-tiny", "tokenizer.json")
	editJSON(t, filepath.Join(dir, "tokenizer_config.json"), func(m map[string]any) { m["tokenizer_class"] = "GPT2Tokenizer" })
	if _, err := rt.Open(dir, onnx.Options{}); err == nil || !strings.Contains(err.Error(), "scripts/export_onnx.py") {
		t.Errorf("GPT-2 vocab.json + merges.txt: %v, want a refusal", err)
	}
}

// A tokenizer from another folder (tokenizer_revision) is read as the
// model's own is: here from vocab.json + merges.txt, without tokenizer.json.
func TestTokenizerDirFromSlowFiles(t *testing.T) {
	tokDir := copyWithout(t, "roberta-tiny", "tokenizer.json")
	m := open(t, "roberta-tiny", onnx.Options{TokenizerDir: tokDir})
	ref := reference(t, "roberta-tiny")
	got, err := m.Predict(context.Background(), ref.TextList())
	if err != nil {
		t.Fatalf("tokenizer from vocab.json + merges.txt of another folder: %v", err)
	}
	for i, r := range ref.Texts {
		if d := backendtest.MaxAbsDiff(got[i], r.Logits); d > backendtest.RefTolerance {
			t.Errorf("%q with another folder's vocab.json + merges.txt: diff %.2g", r.Text, d)
		}
	}
}

// Scores from our logits with the reported activation are the pipeline's.
func TestPipelineScores(t *testing.T) {
	for _, name := range fixtures {
		m := open(t, name, onnx.Options{})
		ref := reference(t, name)
		md := m.Metadata()
		for i, row := range ref.Pipeline {
			var got protocol.Logits
			var err error
			if row.TextPair != nil {
				got, err = m.PredictPairs(context.Background(), [][2]string{{row.Text, *row.TextPair}})
			} else {
				got, err = m.Predict(context.Background(), []string{row.Text})
			}
			if err != nil {
				t.Fatal(err)
			}
			scores := activate(md.Activation, got[0])
			for _, s := range row.Scores {
				j := slices.Index(md.Labels, s.Label)
				if j < 0 || math.Abs(scores[j]-s.Score) > 1e-4 {
					t.Errorf("%s pipeline row %d: label %q score %v, pipeline %v", name, i, s.Label, scores, s.Score)
				}
			}
		}
	}
}

func activate(fn string, logits []float32) []float64 {
	out := f64(logits)
	switch fn {
	case protocol.ActivationSigmoid:
		for i, x := range out {
			out[i] = 1 / (1 + math.Exp(-x))
		}
	case protocol.ActivationSoftmax:
		hi := slices.Max(out)
		sum := 0.0
		for i, x := range out {
			out[i] = math.Exp(x - hi)
			sum += out[i]
		}
		for i := range out {
			out[i] /= sum
		}
	}
	return out
}

// GraphFile picks one of several graphs in a folder (transformers.js /
// optimum ship onnx/model.onnx, onnx/model_quantized.onnx, …); its external
// data is part of the fingerprint.
func TestGraphFile(t *testing.T) {
	dir := copyWithout(t, "sst2-tiny-a")
	other, err := os.ReadFile(filepath.Join(models, "sst2-tiny-b", "onnx", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "onnx", "model_quantized.onnx"), other, 0o644); err != nil {
		t.Fatal(err)
	}
	def := open(t, dir, onnx.Options{})
	variant := open(t, dir, onnx.Options{GraphFile: "onnx/model_quantized.onnx"})
	got, err := variant.Predict(context.Background(), []string{"Hello, my dog is cute"})
	if err != nil {
		t.Fatal(err)
	}
	if d := backendtest.MaxAbsDiff(got[0], reference(t, "sst2-tiny-b").Texts[0].Logits); d > backendtest.RefTolerance {
		t.Errorf("onnx/model_quantized.onnx did not serve that graph (diff %.2g)", d)
	}
	if def.Metadata().Fingerprint == variant.Metadata().Fingerprint {
		t.Error("two graphs of one folder share a fingerprint")
	}
	fp := variant.Metadata().Fingerprint
	// External data beside the graph (here a stand-in file: the graph does
	// not read it) changes the fingerprint; another graph's does not.
	if err := os.WriteFile(filepath.Join(dir, "onnx", "model.onnx_data"), []byte("other graph's weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	if open(t, dir, onnx.Options{GraphFile: "onnx/model_quantized.onnx"}).Metadata().Fingerprint != fp {
		t.Error("model.onnx_data changed model_quantized.onnx's fingerprint")
	}
	if err := os.WriteFile(filepath.Join(dir, "onnx", "model_quantized.onnx_data"), []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	if open(t, dir, onnx.Options{GraphFile: "onnx/model_quantized.onnx"}).Metadata().Fingerprint == fp {
		t.Error("model_quantized.onnx_data is not in the fingerprint")
	}
	for file, want := range map[string]string{
		"onnx/model_fp16.onnx": "graphs there: [onnx/model.onnx onnx/model_quantized.onnx]",
		"../sst2-tiny-b/onnx":  "must be a path inside the model folder",
		"/etc/passwd":          "must be a path inside the model folder",
	} {
		if _, err := rt.Open(dir, onnx.Options{GraphFile: file}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("GraphFile %q: %v, want %q", file, err, want)
		}
	}
}

// editJSON rewrites a JSON object file through edit.
func editJSON(t *testing.T, path string, edit func(map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}
