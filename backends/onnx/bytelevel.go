package onnx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// byteLevelBPETokenizerJSON builds the tokenizer.json that transformers'
// RobertaConverter makes from a folder with vocab.json + merges.txt and no
// tokenizer.json (RoBERTa, DistilRoBERTa, BART, Longformer): the BPE model
// with no unknown token, the ByteLevel pre-tokenizer (add_prefix_space as
// configured), RobertaProcessing (<s> A </s> and <s> A </s></s> B </s>), and
// the special tokens as added tokens, matched in text as transformers does.
func byteLevelBPETokenizerJSON(dir, modelType string) ([]byte, error) {
	tc, err := readTokenizerConfig(dir)
	if err != nil {
		return nil, err
	}
	if tc.TokenizerClass != "" && !isRobertaTokenizerClass(tc.TokenizerClass) ||
		tc.TokenizerClass == "" && !robertaTokenizerModels[modelType] {
		what := tc.TokenizerClass
		if what == "" {
			what = "model_type " + strconv.Quote(modelType)
		}
		return nil, fmt.Errorf("%s has vocab.json + merges.txt for %s, which Chorus converts only for RoBERTa-style tokenizers; "+
			"write a tokenizer.json with `python scripts/export_onnx.py --model ORG/REPO --out DIR`", dir, what)
	}
	st, err := robertaSpecialTokens(dir, tc)
	if err != nil {
		return nil, err
	}
	var vocab map[string]int
	if err := readJSON(filepath.Join(dir, "vocab.json"), &vocab); err != nil {
		return nil, err
	}
	merges, err := readMerges(filepath.Join(dir, "merges.txt"))
	if err != nil {
		return nil, err
	}
	added, err := robertaAddedTokens(tc, vocab, st)
	if err != nil {
		return nil, err
	}
	idOf := func(tok string) (int, error) {
		if id, ok := vocab[tok]; ok {
			return id, nil
		}
		for _, t := range added {
			if t.Content == tok {
				return t.ID, nil
			}
		}
		return 0, fmt.Errorf("%s: special token %q is in neither vocab.json nor the added tokens", dir, tok)
	}
	sepID, err := idOf(st.sep)
	if err != nil {
		return nil, err
	}
	clsID, err := idOf(st.cls)
	if err != nil {
		return nil, err
	}
	addPrefixSpace := tc.AddPrefixSpace != nil && *tc.AddPrefixSpace

	doc := map[string]any{
		"version":        "1.0",
		"truncation":     nil,
		"padding":        nil,
		"added_tokens":   added,
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": addPrefixSpace, "trim_offsets": true, "use_regex": true},
		"post_processor": map[string]any{"type": "RobertaProcessing", "sep": []any{st.sep, sepID}, "cls": []any{st.cls, clsID}, "trim_offsets": true, "add_prefix_space": addPrefixSpace},
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "",
			"end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": merges},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("build tokenizer from vocab.json: %w", err)
	}
	return buf.Bytes(), nil
}

// robertaTokens are a RoBERTa-style tokenizer's special tokens.
type robertaTokens struct{ bos, eos, sep, cls, unk, pad, mask string }

// robertaSpecialTokens reads them: special_tokens_map.json overrides
// tokenizer_config.json, as in transformers' from_pretrained.
func robertaSpecialTokens(dir string, tc tokenizerConfig) (robertaTokens, error) {
	var stm specialTokens
	if raw, err := os.ReadFile(filepath.Join(dir, "special_tokens_map.json")); err == nil {
		if err := json.Unmarshal(raw, &stm); err != nil {
			return robertaTokens{}, fmt.Errorf("parse special_tokens_map.json: %w", err)
		}
	}
	special := func(fromMap, fromConfig any, def string) string {
		return tokenContentOr(fromMap, tokenContentOr(fromConfig, def))
	}
	return robertaTokens{bos: special(stm.BOS, tc.BOS, "<s>"), eos: special(stm.EOS, tc.EOS, "</s>"),
		sep: special(stm.SEP, tc.SEP, "</s>"), cls: special(stm.CLS, tc.CLS, "<s>"), unk: special(stm.UNK, tc.UNK, "<unk>"),
		pad: special(stm.PAD, tc.PAD, "<pad>"), mask: special(stm.Mask, tc.Mask, "<mask>")}, nil
}

// robertaAddedTokens are the added tokens as saved (added_tokens_decoder),
// else RobertaTokenizer's defaults: the special tokens, <mask> taking the
// space before it; sorted by id.
func robertaAddedTokens(tc tokenizerConfig, vocab map[string]int, st robertaTokens) ([]addedToken, error) {
	var added []addedToken
	if len(tc.AddedTokensDecoder) > 0 {
		for k, t := range tc.AddedTokensDecoder {
			id, err := strconv.Atoi(k)
			if err != nil {
				return nil, fmt.Errorf("tokenizer_config.json: added_tokens_decoder key %q is not an id", k)
			}
			t.ID = id
			added = append(added, t)
		}
	} else {
		seen := map[string]bool{}
		for _, tok := range []string{st.bos, st.pad, st.eos, st.unk, st.sep, st.cls, st.mask} {
			id, ok := vocab[tok]
			if !ok || seen[tok] {
				continue
			}
			seen[tok] = true
			added = append(added, addedToken{ID: id, Content: tok, LStrip: tok == st.mask, Special: true})
		}
	}
	slices.SortFunc(added, func(a, b addedToken) int { return a.ID - b.ID })
	return added, nil
}

// readMerges reads merges.txt as RobertaTokenizer does: the first line (the
// "#version" header) and the last (empty after the final newline) are
// dropped, each line is split on whitespace, and a repeated merge keeps its
// first rank.
func readMerges(path string) ([][2]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read merges.txt: %w", err)
	}
	lines := strings.Split(string(raw), "\n")
	if len(lines) < 2 {
		return nil, fmt.Errorf("%s has no merges", path)
	}
	lines = lines[1 : len(lines)-1]
	seen := make(map[[2]string]bool, len(lines))
	merges := make([][2]string, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue // BPE cannot take it; Python would fail on it later
		}
		m := [2]string{f[0], f[1]}
		if !seen[m] {
			seen[m] = true
			merges = append(merges, m)
		}
	}
	return merges, nil
}
