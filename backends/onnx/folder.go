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
	"strings"

	"github.com/chorusml/chorus/protocol"
)

// folder is what Chorus reads from a Hugging Face model folder.
type folder struct {
	dir       string
	graphPath string
	// graphData are the graph's external-data files (weights stored beside
	// the graph), which decide the logits as much as the graph does.
	graphData     []string
	tokenizerJSON []byte
	labels        []string
	// positions is how many tokens the architecture can take: its
	// max_position_embeddings, less the padding offset of RoBERTa-family
	// position ids; 0 when config.json does not say.
	positions int
	// positionsWhy explains positions in errors.
	positionsWhy string
	// modelMaxLength is tokenizer_config.json's model_max_length when set
	// and sane (transformers writes a huge sentinel when it is unset); 0
	// otherwise.
	modelMaxLength int
	truncateLeft   bool
	padID          int64
	activation     string
	modelType      string // config.json's model_type
}

// hfConfig holds the config.json fields Chorus uses.
type hfConfig struct {
	ModelType             string            `json:"model_type"`
	ID2Label              map[string]string `json:"id2label"`
	NumLabels             int               `json:"num_labels"`
	NumLabelsLegacy       int               `json:"_num_labels"`
	MaxPositionEmbeddings int               `json:"max_position_embeddings"`
	PadTokenID            *int              `json:"pad_token_id"`
	ProblemType           string            `json:"problem_type"`
}

// graphCandidates are where exporters put the graph: optimum and our fixture
// script write onnx/model.onnx; older exports put model.onnx at the top.
var graphCandidates = []string{filepath.Join("onnx", "model.onnx"), "model.onnx"}

// readFolder reads dir; graphFile, when set, names the graph to serve
// (relative to dir, e.g. onnx/model_quantized.onnx) instead of the default.
func readFolder(dir, graphFile string) (*folder, error) {
	f := &folder{dir: dir}
	if err := f.findGraph(graphFile); err != nil {
		return nil, err
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
	f.activation = defaultActivation(cfg.ProblemType, len(labels))
	f.positions, f.positionsWhy = positionLimit(cfg)

	tc, err := readTokenizerConfig(dir)
	if err != nil {
		return nil, err
	}
	f.modelMaxLength = tc.modelMaxLength()
	switch tc.TruncationSide {
	case "", "right":
	case "left":
		f.truncateLeft = true
	default:
		return nil, fmt.Errorf("tokenizer_config.json: truncation_side %q is not left or right", tc.TruncationSide)
	}

	f.modelType = cfg.ModelType
	f.tokenizerJSON, err = readTokenizer(dir, f.modelType)
	if err != nil {
		return nil, err
	}
	f.padID, err = padTokenID(dir, f.tokenizerJSON)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// findGraph sets the graph to serve and its external-data files.
func (f *folder) findGraph(graphFile string) error {
	if graphFile != "" {
		rel := filepath.FromSlash(graphFile)
		if filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
			return fmt.Errorf("onnx_file %q must be a path inside the model folder", graphFile)
		}
		p := filepath.Join(f.dir, rel)
		if st, err := os.Stat(p); err != nil || st.IsDir() {
			return fmt.Errorf("onnx_file %q is not in %s (graphs there: %v)", graphFile, f.dir, listGraphs(f.dir))
		}
		return f.setGraph(p)
	}
	for _, c := range graphCandidates {
		p := filepath.Join(f.dir, c)
		if _, err := os.Stat(p); err == nil {
			return f.setGraph(p)
		}
	}
	return fmt.Errorf("no ONNX graph in %s (looked for %v); export one with scripts/export_onnx.py or optimum-cli export onnx", f.dir, graphCandidates)
}

// setGraph makes p the graph to serve, with its own external-data files.
func (f *folder) setGraph(p string) error {
	entries, err := os.ReadDir(filepath.Dir(p))
	if err != nil {
		return fmt.Errorf("read graph folder: %w", err)
	}
	f.graphPath, f.graphData = p, nil
	base := filepath.Base(p)
	for _, e := range entries {
		if !e.IsDir() && isExternalData(base, e.Name()) {
			f.graphData = append(f.graphData, filepath.Join(filepath.Dir(p), e.Name()))
		}
	}
	return nil
}

// isExternalData reports whether file is external data of graph (both base
// names in one folder) by the names exporters give it: model.onnx_data,
// model.onnx.data, model.onnx_data_1, … (optimum, transformers.js, torch).
func isExternalData(graph, file string) bool {
	rest, ok := strings.CutPrefix(file, graph)
	return ok && (strings.HasPrefix(rest, "_data") || strings.HasPrefix(rest, ".data"))
}

// listGraphs names the .onnx files under dir, for error messages.
func listGraphs(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".onnx") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

// defaultActivation is the function transformers' text-classification
// pipeline applies when none is asked for (pipelines/text_classification.py
// in the pinned transformers): none for regression; sigmoid for multi-label
// models and one-logit models; softmax otherwise.
func defaultActivation(problemType string, numLabels int) string {
	switch {
	case problemType == "regression":
		return protocol.ActivationNone
	case problemType == "multi_label_classification" || numLabels == 1:
		return protocol.ActivationSigmoid
	default:
		return protocol.ActivationSoftmax
	}
}

// offsetPositions are the model types whose embeddings number positions
// from padding_idx + 1 (fairseq's make_positions: transformers'
// create_position_ids_from_input_ids), so that max_position_embeddings
// positions take pad_token_id + 1 fewer tokens (RoBERTa: 514 → 512).
var offsetPositions = map[string]bool{
	"roberta": true, "xlm-roberta": true, "xlm-roberta-xl": true, "camembert": true,
	"roberta-prelayernorm": true, "data2vec-text": true, "longformer": true, "ibert": true,
	"luke": true, "markuplm": true, "mpnet": true, "xmod": true, "lilt": true, "layoutlmv3": true,
	"esm": true,
}

// positionLimit is how many tokens the model's position embeddings take.
func positionLimit(cfg hfConfig) (int, string) {
	n := cfg.MaxPositionEmbeddings
	if n <= 0 {
		return 0, ""
	}
	why := fmt.Sprintf("the model's max_position_embeddings %d", n)
	if offsetPositions[cfg.ModelType] {
		pad := 1 // RobertaConfig's default pad_token_id
		if cfg.PadTokenID != nil {
			pad = *cfg.PadTokenID
		}
		n -= pad + 1
		why = fmt.Sprintf("the %d tokens the model's positions take (%s, max_position_embeddings %d less padding_idx+1 = %d)",
			n, cfg.ModelType, cfg.MaxPositionEmbeddings, pad+1)
	}
	return n, why
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
