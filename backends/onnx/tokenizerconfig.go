package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// tokenizerConfig holds the tokenizer_config.json fields Chorus reads.
type tokenizerConfig struct {
	ModelMaxLength json.Number `json:"model_max_length"`
	TruncationSide string      `json:"truncation_side"`
	TokenizerClass string      `json:"tokenizer_class"`
	AddPrefixSpace *bool       `json:"add_prefix_space"`
	// AddedTokensDecoder (transformers ≥ 4.34) lists added tokens by id
	// with their matching options.
	AddedTokensDecoder map[string]addedToken `json:"added_tokens_decoder"`
	specialTokens
}

// specialTokens are the special-token fields, each a string or an
// AddedToken object.
type specialTokens struct {
	BOS  any `json:"bos_token"`
	EOS  any `json:"eos_token"`
	UNK  any `json:"unk_token"`
	SEP  any `json:"sep_token"`
	PAD  any `json:"pad_token"`
	CLS  any `json:"cls_token"`
	Mask any `json:"mask_token"`
}

// addedToken is an entry of tokenizer.json's added_tokens (and of
// tokenizer_config.json's added_tokens_decoder, without the id).
type addedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

// readTokenizerConfig reads tokenizer_config.json; a folder without one
// gives the zero config (transformers' defaults).
func readTokenizerConfig(dir string) (tokenizerConfig, error) {
	var tc tokenizerConfig
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return tc, nil
	}
	if err != nil {
		return tc, fmt.Errorf("read tokenizer_config.json: %w", err)
	}
	if err := json.Unmarshal(raw, &tc); err != nil {
		return tc, fmt.Errorf("parse %s: %w", filepath.Join(dir, "tokenizer_config.json"), err)
	}
	return tc, nil
}

// saneMaxLength bounds a believable model_max_length: transformers writes
// int(1e30) when a tokenizer has none, and some repos 1e12 or 2**63-1.
const saneMaxLength = 1 << 24

// modelMaxLength is model_max_length when set and sane, else 0.
func (tc tokenizerConfig) modelMaxLength() int {
	if tc.ModelMaxLength == "" {
		return 0
	}
	v, err := tc.ModelMaxLength.Float64()
	if err != nil || v <= 0 || v > saneMaxLength || v != math.Trunc(v) {
		return 0
	}
	return int(v)
}

// sentencePieceFiles are the model files of SentencePiece tokenizers
// (ALBERT/T5/XLNet, XLM-R/CamemBERT, DeBERTa-v3, Llama, Marian), which
// Chorus does not convert itself.
var sentencePieceFiles = []string{"spiece.model", "sentencepiece.bpe.model", "spm.model", "tokenizer.model", "source.spm", "sentencepiece.model"}

// readTokenizer returns the folder's tokenizer.json, or builds it from the
// slow tokenizer files as transformers' converters do: vocab.json +
// merges.txt (RoBERTa's byte-level BPE) or vocab.txt (BERT's WordPiece);
// modelType is config.json's model_type.
func readTokenizer(dir, modelType string) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err == nil {
		return raw, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	switch {
	case exists("vocab.json") && exists("merges.txt"):
		raw, err = byteLevelBPETokenizerJSON(dir, modelType)
	case exists("vocab.txt"):
		// Many BERT-family repos ship only vocab.txt + tokenizer_config.json.
		raw, err = wordPieceTokenizerJSON(dir)
	default:
		for _, sp := range sentencePieceFiles {
			if exists(sp) {
				return nil, fmt.Errorf("%s has a SentencePiece model (%s) but no tokenizer.json, which Chorus needs; "+
					"write one with `python scripts/export_onnx.py --model ORG/REPO --out DIR` (it saves the fast tokenizer) "+
					"or AutoTokenizer.from_pretrained(...).save_pretrained(DIR)", dir, sp)
			}
		}
		return nil, fmt.Errorf("no tokenizer in %s: want tokenizer.json, vocab.json + merges.txt, or vocab.txt "+
			"(export the folder with scripts/export_onnx.py)", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	return raw, nil
}

// tokenContentOr reads a special token field, or def when it is unset.
func tokenContentOr(v any, def string) string {
	if s := tokenContent(v); s != "" {
		return s
	}
	return def
}

// isRobertaTokenizerClass reports whether a tokenizer_class is one whose
// fast tokenizer transformers builds with RobertaConverter.
func isRobertaTokenizerClass(class string) bool {
	switch strings.TrimSuffix(class, "Fast") {
	case "RobertaTokenizer", "BartTokenizer", "LongformerTokenizer", "LEDTokenizer", "MvpTokenizer", "LayoutLMv3Tokenizer":
		return true
	}
	return false
}

// robertaTokenizerModels are the model types AutoTokenizer gives a RoBERTa
// tokenizer when tokenizer_config.json names no class.
var robertaTokenizerModels = map[string]bool{
	"roberta": true, "bart": true, "longformer": true, "led": true, "mvp": true, "roberta-prelayernorm": true,
	"data2vec-text": true, "ibert": true, "layoutlmv3": true,
}
