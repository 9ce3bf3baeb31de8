package onnx_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chorusml/chorus/backends/onnx"
)

// KServe's --disable_lower_case, --disable_special_tokens, --dtype and
// --tokenizer_revision, as Options: each changes the ids the model is fed
// (and so the fingerprint), or the graph it runs.
func TestTokenizerAndGraphOptions(t *testing.T) {
	plain := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: 1})
	lower, err := plain.Tokenize("Hello World")
	if err != nil {
		t.Fatal(err)
	}
	same, _ := plain.Tokenize("hello world")
	if !slices.Equal(lower, same) {
		t.Fatalf("the uncased fixture should lowercase: %v vs %v", lower, same)
	}

	no := false
	cased := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: 1, LowerCase: &no})
	got, _ := cased.Tokenize("Hello World")
	if slices.Equal(got, lower) {
		t.Fatalf("LowerCase=false still lowercases: %v", got)
	}
	if cased.Metadata().Fingerprint == plain.Metadata().Fingerprint {
		t.Fatal("LowerCase=false kept the fingerprint: cached logits would be shared")
	}

	bare := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: 1, NoSpecialTokens: true})
	got, _ = bare.Tokenize("hello world")
	if len(got) != len(lower)-2 || !slices.Equal(got, lower[1:len(lower)-1]) {
		t.Fatalf("without special tokens %v, want %v without its ends", got, lower)
	}
	if bare.Metadata().Fingerprint == plain.Metadata().Fingerprint {
		t.Fatal("NoSpecialTokens kept the fingerprint")
	}

	// dtype: a folder with an fp16 variant serves it; one without keeps
	// the fp32 graph (its fingerprint unchanged).
	if g := onnx.DtypeGraph(filepath.Join(models, "sst2-tiny-a"), "float16"); g != "" {
		t.Fatalf("fixture has no fp16 graph, got %s", g)
	}
	if m := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: 1, Dtype: "float16"}); m.Metadata().Fingerprint != plain.Metadata().Fingerprint {
		t.Fatal("float16 without a variant changed the graph")
	}
	dir := t.TempDir()
	copyDir(t, filepath.Join(models, "sst2-tiny-a"), dir)
	other, err := os.ReadFile(filepath.Join(models, "sst2-tiny-b", "onnx", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "onnx", "model_fp16.onnx"), other, 0o644); err != nil {
		t.Fatal(err)
	}
	if g := onnx.DtypeGraph(dir, "half"); g != filepath.Join(dir, "onnx", "model_fp16.onnx") {
		t.Fatalf("half picked %q", g)
	}
	half, err := rt.Open(dir, onnx.Options{IntraOpThreads: 1, Dtype: "float16"})
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if half.Metadata().Fingerprint == plain.Metadata().Fingerprint {
		t.Fatal("float16 with a variant still serves model.onnx")
	}
	// Its fingerprint covers its own external data, not model.onnx's
	// (stand-in files: the graphs do not read them).
	fp := half.Metadata().Fingerprint
	openHalf := func() string {
		m, err := rt.Open(dir, onnx.Options{IntraOpThreads: 1, Dtype: "float16"})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		return m.Metadata().Fingerprint
	}
	for file, changes := range map[string]bool{"model.onnx_data": false, "model_fp16.onnx_data": true} {
		if err := os.WriteFile(filepath.Join(dir, "onnx", file), []byte("weights"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := openHalf(); (got != fp) != changes {
			t.Errorf("writing %s: fingerprint changed %v, want %v", file, got != fp, changes)
		}
		fp = openHalf()
	}

	// The tokenizer of another folder (another revision): here a cased one.
	tokDir := t.TempDir()
	tj, err := os.ReadFile(filepath.Join(models, "sst2-tiny-a", "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(tj, &doc); err != nil {
		t.Fatal(err)
	}
	doc["normalizer"].(map[string]any)["lowercase"] = false
	tj, _ = json.Marshal(doc)
	if err := os.WriteFile(filepath.Join(tokDir, "tokenizer.json"), tj, 0o644); err != nil {
		t.Fatal(err)
	}
	tt := open(t, "sst2-tiny-a", onnx.Options{IntraOpThreads: 1, TokenizerDir: tokDir})
	if got, _ := tt.Tokenize("Hello World"); slices.Equal(got, lower) || tt.Metadata().Fingerprint == plain.Metadata().Fingerprint {
		t.Fatalf("TokenizerDir not used: %v", got)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
