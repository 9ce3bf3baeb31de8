package backendtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Reference is a fixture's reference.json: token ids and fp32 logits that
// `transformers` computed for a fixed list of texts (and text pairs), and the
// text-classification pipeline's scores.
type Reference struct {
	Model     string `json:"model"`
	MaxLength int    `json:"max_length"`
	// Activation is the pipeline's default function_to_apply for the model
	// (softmax, sigmoid or none); empty in older references.
	Activation string    `json:"activation"`
	Texts      []RefText `json:"texts"`
	// Pairs are text pairs, tokenized as transformers does for the model
	// (truncation longest_first); empty in older references.
	Pairs []RefText `json:"pairs"`
	// Pipeline holds the pipeline's scores (top_k=None) for some texts and
	// pairs.
	Pipeline []RefScores `json:"pipeline"`
}

// RefText is one reference row: a text, or a pair when TextPair is set.
type RefText struct {
	Text     string  `json:"text"`
	TextPair *string `json:"text_pair,omitempty"`
	InputIDs []int64 `json:"input_ids"`
	// TokenTypeIDs are set for pairs when the tokenizer makes them.
	TokenTypeIDs []int64   `json:"token_type_ids,omitempty"`
	Logits       []float64 `json:"logits"`
	// BatchLogits are the logits when every row of the reference ran as
	// one padded batch in PyTorch; nil in older references.
	BatchLogits []float64 `json:"batch_logits,omitempty"`
}

// RefScores is the pipeline's answer for one text or pair.
type RefScores struct {
	Text     string  `json:"text"`
	TextPair *string `json:"text_pair,omitempty"`
	Scores   []struct {
		Label string  `json:"label"`
		Score float64 `json:"score"`
	} `json:"scores"`
}

// LoadReference reads a reference.json.
func LoadReference(path string) (Reference, error) {
	var r Reference
	raw, err := os.ReadFile(path)
	if err != nil {
		return r, fmt.Errorf("read reference: %w", err)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(r.Texts) == 0 {
		return r, fmt.Errorf("%s has no texts", path)
	}
	for i, p := range r.Pairs {
		if p.TextPair == nil {
			return r, fmt.Errorf("%s: pair %d has no text_pair", path, i)
		}
	}
	return r, nil
}

// PairList returns the reference pairs in order.
func (r Reference) PairList() [][2]string {
	out := make([][2]string, len(r.Pairs))
	for i, p := range r.Pairs {
		out[i] = [2]string{p.Text, *p.TextPair}
	}
	return out
}

// TextList returns the reference texts in order.
func (r Reference) TextList() []string {
	out := make([]string, len(r.Texts))
	for i, t := range r.Texts {
		out[i] = t.Text
	}
	return out
}

// FixtureReference loads the reference of a fixture model folder, given
// relative to the repository root (e.g. testdata/models/sst2-tiny-a).
func FixtureReference(t testing.TB, root, fixture string) Reference {
	t.Helper()
	ref, err := LoadReference(filepath.Join(root, fixture, "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
