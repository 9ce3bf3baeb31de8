package backendtest

import (
	"encoding/json"
	"fmt"
	"os"
)

// Reference is a fixture's reference.json: token ids and fp32 logits that
// `transformers` computed for a fixed list of texts.
type Reference struct {
	Model     string    `json:"model"`
	MaxLength int       `json:"max_length"`
	Texts     []RefText `json:"texts"`
}

// RefText is one reference row.
type RefText struct {
	Text     string    `json:"text"`
	InputIDs []int64   `json:"input_ids"`
	Logits   []float64 `json:"logits"`
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
	return r, nil
}

// TextList returns the reference texts in order.
func (r Reference) TextList() []string {
	out := make([]string, len(r.Texts))
	for i, t := range r.Texts {
		out[i] = t.Text
	}
	return out
}
