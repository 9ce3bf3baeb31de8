package onnx

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// wordPieceTokenizerJSON builds the tokenizer.json that transformers'
// BertConverter makes from a BERT-family repo that ships only vocab.txt and
// tokenizer_config.json, so that such repos tokenize exactly as
// AutoTokenizer would: BertNormalizer (clean text, Chinese-character
// splitting, lower-casing, accent stripping as configured), the BERT
// pre-tokenizer, WordPiece, and [CLS] A [SEP] framing.
func wordPieceTokenizerJSON(dir string) ([]byte, error) {
	vocabPath := filepath.Join(dir, "vocab.txt")
	vocab, err := readWordPieceVocab(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("no tokenizer.json and no vocab.txt in %s: %w", dir, err)
	}
	tc := bertTokenizerConfig{DoLowerCase: true, TokenizeChineseChars: true,
		UNK: "[UNK]", SEP: "[SEP]", PAD: "[PAD]", CLS: "[CLS]", Mask: "[MASK]"}
	if raw, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json")); err == nil {
		if err := tc.parse(raw); err != nil {
			return nil, fmt.Errorf("parse tokenizer_config.json: %w", err)
		}
	}
	for _, tok := range []string{tc.CLS, tc.SEP, tc.UNK} {
		if _, ok := vocab[tok]; !ok {
			return nil, fmt.Errorf("%s: special token %q is not in the vocabulary", vocabPath, tok)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(bertTokenizerDoc(vocab, tc)); err != nil {
		return nil, fmt.Errorf("build tokenizer from vocab.txt: %w", err)
	}
	return buf.Bytes(), nil
}

// readWordPieceVocab reads vocab.txt: one token a line, its id the line
// number (the first of duplicates wins).
func readWordPieceVocab(path string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vocab := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for id := 0; sc.Scan(); id++ {
		// transformers' load_vocab strips only the newline.
		tok := strings.TrimRight(sc.Text(), "\r")
		if _, dup := vocab[tok]; !dup {
			vocab[tok] = id
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return vocab, nil
}

// bertTokenizerDoc is the tokenizer.json transformers' BertConverter
// writes for vocab and tc (whose CLS, SEP and UNK are in vocab).
func bertTokenizerDoc(vocab map[string]int, tc bertTokenizerConfig) map[string]any {
	var added []map[string]any
	for _, tok := range []string{tc.PAD, tc.UNK, tc.CLS, tc.SEP, tc.Mask} {
		if v, ok := vocab[tok]; ok {
			added = append(added, map[string]any{"id": v, "content": tok, "single_word": false,
				"lstrip": false, "rstrip": false, "normalized": false, "special": true})
		}
	}
	special := func(tok string, typeID int) map[string]any {
		return map[string]any{"SpecialToken": map[string]any{"id": tok, "type_id": typeID}}
	}
	seq := func(name string, typeID int) map[string]any {
		return map[string]any{"Sequence": map[string]any{"id": name, "type_id": typeID}}
	}
	return map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer": map[string]any{"type": "BertNormalizer", "clean_text": true,
			"handle_chinese_chars": tc.TokenizeChineseChars, "strip_accents": tc.StripAccents,
			"lowercase": tc.DoLowerCase},
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{special(tc.CLS, 0), seq("A", 0), special(tc.SEP, 0)},
			"pair":   []any{special(tc.CLS, 0), seq("A", 0), special(tc.SEP, 0), seq("B", 1), special(tc.SEP, 1)},
			"special_tokens": map[string]any{
				tc.CLS: map[string]any{"id": tc.CLS, "ids": []int{vocab[tc.CLS]}, "tokens": []string{tc.CLS}},
				tc.SEP: map[string]any{"id": tc.SEP, "ids": []int{vocab[tc.SEP]}, "tokens": []string{tc.SEP}},
			},
		},
		"decoder": map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model": map[string]any{"type": "WordPiece", "unk_token": tc.UNK, "continuing_subword_prefix": "##",
			"max_input_chars_per_word": 100, "vocab": vocab},
	}
}

// bertTokenizerConfig holds the tokenizer_config.json fields BertConverter reads.
type bertTokenizerConfig struct {
	DoLowerCase          bool
	TokenizeChineseChars bool
	StripAccents         *bool // nil: follow lowercase, as BERT does
	UNK, SEP, PAD, CLS   string
	Mask                 string
}

func (c *bertTokenizerConfig) parse(raw []byte) error {
	var w struct {
		DoLowerCase          *bool `json:"do_lower_case"`
		TokenizeChineseChars *bool `json:"tokenize_chinese_chars"`
		StripAccents         *bool `json:"strip_accents"`
		UNK                  any   `json:"unk_token"`
		SEP                  any   `json:"sep_token"`
		PAD                  any   `json:"pad_token"`
		CLS                  any   `json:"cls_token"`
		Mask                 any   `json:"mask_token"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return err
	}
	if w.DoLowerCase != nil {
		c.DoLowerCase = *w.DoLowerCase
	}
	if w.TokenizeChineseChars != nil {
		c.TokenizeChineseChars = *w.TokenizeChineseChars
	}
	c.StripAccents = w.StripAccents
	for _, f := range []struct {
		v   any
		dst *string
	}{{w.UNK, &c.UNK}, {w.SEP, &c.SEP}, {w.PAD, &c.PAD}, {w.CLS, &c.CLS}, {w.Mask, &c.Mask}} {
		if s := tokenContent(f.v); s != "" {
			*f.dst = s
		}
	}
	return nil
}

// tokenContent reads a special token written as "[X]" or as an AddedToken
// object {"content": "[X]", ...}.
func tokenContent(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case map[string]any:
		s, _ := t["content"].(string)
		return s
	}
	return ""
}
