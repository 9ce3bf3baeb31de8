package onnx

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// folder is what Chorus reads from a Hugging Face model folder.
type folder struct {
	dir           string
	graphPath     string
	tokenizerJSON []byte
	labels        []string
	maxPositions  int
	padID         int64
}

// hfConfig holds the config.json fields Chorus uses.
type hfConfig struct {
	ID2Label              map[string]string `json:"id2label"`
	NumLabels             int               `json:"num_labels"`
	NumLabelsLegacy       int               `json:"_num_labels"`
	MaxPositionEmbeddings int               `json:"max_position_embeddings"`
}

// graphCandidates are where exporters put the graph: optimum and our fixture
// script write onnx/model.onnx; older exports put model.onnx at the top.
var graphCandidates = []string{filepath.Join("onnx", "model.onnx"), "model.onnx"}

func readFolder(dir string) (*folder, error) {
	f := &folder{dir: dir}
	for _, c := range graphCandidates {
		p := filepath.Join(dir, c)
		if _, err := os.Stat(p); err == nil {
			f.graphPath = p
			break
		}
	}
	if f.graphPath == "" {
		return nil, fmt.Errorf("no ONNX graph in %s (looked for %v); export one with scripts/fixtures or optimum-cli export onnx", dir, graphCandidates)
	}

	var cfg hfConfig
	if err := readJSON(filepath.Join(dir, "config.json"), &cfg); err != nil {
		return nil, err
	}
	labels, err := labelsFromConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	f.labels = labels
	f.maxPositions = cfg.MaxPositionEmbeddings

	f.tokenizerJSON, err = os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if errors.Is(err, fs.ErrNotExist) {
		// Many BERT-family repos ship only vocab.txt + tokenizer_config.json.
		f.tokenizerJSON, err = wordPieceTokenizerJSON(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	f.padID, err = padTokenID(dir, f.tokenizerJSON)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// labelsFromConfig reads the label names as transformers does: id2label, or
// when save_pretrained left it out (it omits defaults) num_labels labels named
// LABEL_0..., two when nothing is said.
func labelsFromConfig(cfg hfConfig) ([]string, error) {
	if len(cfg.ID2Label) > 0 {
		return labelsFromID2Label(cfg.ID2Label)
	}
	n := cmp.Or(cfg.NumLabels, cfg.NumLabelsLegacy, 2)
	labels := make([]string, n)
	for i := range labels {
		labels[i] = "LABEL_" + strconv.Itoa(i)
	}
	return labels, nil
}

// labelsFromID2Label turns {"0": "NEGATIVE", "1": "POSITIVE"} into a dense
// slice, rejecting gaps so that logit column j always means label j.
func labelsFromID2Label(m map[string]string) ([]string, error) {
	if len(m) == 0 {
		return nil, errors.New("id2label is missing or empty")
	}
	ids := make([]int, 0, len(m))
	for k := range m {
		id, err := strconv.Atoi(k)
		if err != nil {
			return nil, fmt.Errorf("id2label key %q is not an integer", k)
		}
		ids = append(ids, id)
	}
	sort.Ints(ids)
	labels := make([]string, len(ids))
	for i, id := range ids {
		if id != i {
			return nil, fmt.Errorf("id2label ids must be 0..%d, got %v", len(ids)-1, ids)
		}
		labels[i] = m[strconv.Itoa(id)]
	}
	return labels, nil
}

// padTokenID finds the id of tokenizer_config.json's pad_token (default
// "[PAD]") among tokenizer.json's added tokens. Padded positions are masked
// out, so the id only has to be a valid one.
func padTokenID(dir string, tokenizerJSON []byte) (int64, error) {
	padToken := "[PAD]"
	var tc struct {
		PadToken any `json:"pad_token"`
	}
	if err := readJSON(filepath.Join(dir, "tokenizer_config.json"), &tc); err == nil {
		switch v := tc.PadToken.(type) {
		case string:
			padToken = v
		case map[string]any: // AddedToken form: {"content": "[PAD]", ...}
			if s, ok := v["content"].(string); ok {
				padToken = s
			}
		}
	}
	var tj struct {
		AddedTokens []struct {
			ID      int64  `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
	}
	if err := json.Unmarshal(tokenizerJSON, &tj); err != nil {
		return 0, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	for _, t := range tj.AddedTokens {
		if t.Content == padToken {
			return t.ID, nil
		}
	}
	return 0, nil
}
