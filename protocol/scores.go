package protocol

import (
	"encoding/json"
	"math"
)

// LabelScore is one named score of the scores output, as transformers'
// text-classification pipeline writes it: {"label": NAME, "score": p}.
type LabelScore struct {
	Label string
	Score float32
}

// MarshalJSON writes {"label": ..., "score": ...} with the shortest digits
// that round-trip the float32 score (null when it is not finite).
func (s LabelScore) MarshalJSON() ([]byte, error) {
	label, err := json.Marshal(s.Label)
	if err != nil {
		return nil, err
	}
	b := append([]byte(`{"label":`), label...)
	b = append(b, `,"score":`...)
	return append(appendFloat32(b, s.Score), '}'), nil
}

// UnmarshalJSON reads what MarshalJSON writes (null scores as NaN).
func (s *LabelScore) UnmarshalJSON(b []byte) error {
	var w struct {
		Label string   `json:"label"`
		Score *float64 `json:"score"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	s.Label, s.Score = w.Label, float32(math.NaN())
	if w.Score != nil {
		s.Score = float32(*w.Score)
	}
	return nil
}

// topK reads parameters.top_k: a positive integer when present.
func topK(params map[string]json.RawMessage) (int, error) {
	n, ok, err := intParam(params, "top_k", "parameters")
	if err != nil {
		return 0, err
	}
	if ok && n == 0 {
		return 0, invalid("parameters.top_k is 0, want a positive integer (leave it out for every label)")
	}
	return int(n), nil
}
