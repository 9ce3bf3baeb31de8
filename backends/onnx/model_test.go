package onnx_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/chorusml/chorus/backends/backendtest"
	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/backends/onnx/onnxtest"
	"github.com/chorusml/chorus/protocol"
)

// rt is the process's one ONNX Runtime environment (ONNX Runtime allows one
// per process), opened and closed by TestMain.
var rt *onnx.Runtime

func TestMain(m *testing.M) {
	os.Exit(onnxtest.Main(m, func(r *onnx.Runtime) { rt = r }))
}

const models = "../../testdata/models"

// fixtures are every model under testdata/models: the BERT-uncased
// originals, then one per tokenizer family, then the multi-label, one-logit
// (cross-encoder) and NLI pair models (scripts/fixtures/make_fixtures.py).
var fixtures = []string{"sst2-tiny-a", "sst2-tiny-b", "sentiment3-tiny", "bert-tiny-tt",
	"bert-cased-tiny", "roberta-tiny", "xlmr-tiny", "albert-tiny", "deberta-v3-tiny", "camembert-tiny", "modernbert-tiny",
	"multilabel-tiny", "crossencoder-tiny", "nli-tiny"}

// open opens a fixture by name, or any folder by absolute path.
func open(t *testing.T, name string, opts onnx.Options) *onnx.Model {
	t.Helper()
	dir := name
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(models, name)
	}
	m, err := rt.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

func reference(t *testing.T, name string) backendtest.Reference {
	t.Helper()
	ref, err := backendtest.LoadReference(filepath.Join(models, name, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestContract(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			backendtest.Run(t, open(t, name, onnx.Options{IntraOpThreads: 1}), reference(t, name))
		})
	}
}

// The demo model make run serves as distilbert (models/demo-sentiment).
func TestDemoModelContract(t *testing.T) {
	const dir = "../../models/demo-sentiment"
	m, err := rt.Open(dir, onnx.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ref, err := backendtest.LoadReference(filepath.Join(dir, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	backendtest.Run(t, m, ref)
	if positive := func(l []float64) bool { return l[1] > l[0] }; !positive(ref.Texts[0].Logits) || positive(ref.Texts[1].Logits) {
		t.Errorf("demo model reference: seed sentences not [1, 0]: %v %v", ref.Texts[0].Logits, ref.Texts[1].Logits)
	}
}

func TestTokenIDsMatchTransformers(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			checkTokenIDs(t, open(t, name, onnx.Options{}), reference(t, name))
		})
	}
}

// checkTokenIDs compares m's ids (and pairs' type ids) with transformers'.
func checkTokenIDs(t *testing.T, m *onnx.Model, ref backendtest.Reference) {
	t.Helper()
	for i, rt := range ref.Texts {
		got, err := m.Tokenize(rt.Text)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, rt.InputIDs) {
			t.Errorf("text %d %q: ids %v, transformers %v", i, protocol.Clip(rt.Text, 60), got, rt.InputIDs)
		}
	}
	for i, rp := range ref.Pairs {
		ids, types, err := m.TokenizePair(rp.Text, *rp.TextPair)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, rp.InputIDs) {
			t.Errorf("pair %d (%q, %q): ids %v, transformers %v", i, protocol.Clip(rp.Text, 30), protocol.Clip(*rp.TextPair, 30), ids, rp.InputIDs)
		}
		if types != nil && rp.TokenTypeIDs != nil && !slices.Equal(types, rp.TokenTypeIDs) {
			t.Errorf("pair %d: token type ids %v, transformers %v", i, types, rp.TokenTypeIDs)
		}
	}
}

// Repos that ship only the slow tokenizer's files — BERT's vocab.txt +
// tokenizer_config.json, RoBERTa's vocab.json + merges.txt — tokenize
// exactly as transformers does, and the model then passes the whole
// contract.
func TestVocabOnlyTokenizer(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			_, errTxt := os.Stat(filepath.Join(models, name, "vocab.txt"))
			_, errJSON := os.Stat(filepath.Join(models, name, "vocab.json"))
			if errTxt != nil && errJSON != nil {
				t.Skip("a SentencePiece or tokenizer.json-only fixture (TestSentencePieceOnlyRefused)")
			}
			dir := copyWithout(t, name, "tokenizer.json")
			m, err := rt.Open(dir, onnx.Options{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			ref := reference(t, name)
			checkTokenIDs(t, m, ref)
			backendtest.Run(t, m, ref)
		})
	}
}

func TestMetadata(t *testing.T) {
	m := open(t, "sentiment3-tiny", onnx.Options{})
	md := m.Metadata()
	if want := []string{"NEGATIVE", "NEUTRAL", "POSITIVE"}; !slices.Equal(md.Labels, want) {
		t.Errorf("labels %v, want %v", md.Labels, want)
	}
	if md.MaxLength != 512 {
		t.Errorf("max length %d, want 512 (max_position_embeddings)", md.MaxLength)
	}
	other := open(t, "sst2-tiny-a", onnx.Options{})
	if other.Metadata().Fingerprint == md.Fingerprint {
		t.Error("two different graphs share a fingerprint")
	}
	short := open(t, "sentiment3-tiny", onnx.Options{MaxLength: 16})
	if short.Metadata().Fingerprint == md.Fingerprint {
		t.Error("max_length does not change the fingerprint")
	}
}

func TestMaxLengthTruncates(t *testing.T) {
	m := open(t, "sst2-tiny-a", onnx.Options{MaxLength: 8})
	ids, err := m.Tokenize(strings.Repeat("good movie ", 50))
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 8 || ids[0] != 101 || ids[7] != 102 {
		t.Fatalf("ids %v: want 8 tokens framed by [CLS] and [SEP]", ids)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct {
		dir  string
		opts onnx.Options
		want string
	}{
		"missing folder": {filepath.Join(dir, "nope"), onnx.Options{}, "no ONNX graph"},
		"max length big": {filepath.Join(models, "sst2-tiny-a"), onnx.Options{MaxLength: 4096}, "exceeds the model's max_position_embeddings 512"},
		"no config.json": {copyWithout(t, "sst2-tiny-a", "config.json"), onnx.Options{}, "config.json"},
		"no tokenizer":   {copyWithout(t, "sst2-tiny-a", "tokenizer.json", "vocab.txt"), onnx.Options{}, "want tokenizer.json, vocab.json + merges.txt, or vocab.txt"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := rt.Open(c.dir, c.opts)
			if err == nil {
				m.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

// save_pretrained leaves id2label out when it is the default: LABEL_0, LABEL_1.
func TestDefaultLabels(t *testing.T) {
	dir := copyWithout(t, "sst2-tiny-a", "config.json")
	cfg := `{"architectures": ["DistilBertForSequenceClassification"], "max_position_embeddings": 512, "model_type": "distilbert"}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := rt.Open(dir, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := m.Metadata().Labels; !slices.Equal(got, []string{"LABEL_0", "LABEL_1"}) {
		t.Errorf("labels %v", got)
	}
}

func TestGraphAtTopLevel(t *testing.T) {
	dir := copyWithout(t, "sst2-tiny-a")
	if err := os.Rename(filepath.Join(dir, "onnx", "model.onnx"), filepath.Join(dir, "model.onnx")); err != nil {
		t.Fatal(err)
	}
	m, err := rt.Open(dir, onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got, err := m.Predict(context.Background(), []string{"Hello, my dog is cute"})
	if err != nil {
		t.Fatal(err)
	}
	want := reference(t, "sst2-tiny-a").Texts[0].Logits
	if d := backendtest.MaxAbsDiff(got[0], want); d > backendtest.RefTolerance {
		t.Fatalf("logits %v, want %v", got[0], want)
	}
}

func TestPredictAfterClose(t *testing.T) {
	m, err := rt.Open(filepath.Join(models, "sst2-tiny-a"), onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Predict(context.Background(), []string{"x"}); !errors.Is(err, protocol.ErrUnavailable) {
		t.Fatalf("predict after close: %v, want ErrUnavailable", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestMissingLibrary(t *testing.T) {
	_, err := onnx.NewRuntime("/nonexistent/libonnxruntime.so.1")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/libonnxruntime.so.1") || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("error %v: want one naming the path and `make deps`", err)
	}
}

// copyWithout copies a fixture folder into a temp dir, leaving out skip.
func copyWithout(t *testing.T, name string, skip ...string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	src := filepath.Join(models, name)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if slices.Contains(skip, rel) {
			return nil
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
