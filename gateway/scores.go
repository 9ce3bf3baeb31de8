package gateway

import (
	"encoding/json"
	"sort"

	"github.com/chorusml/chorus/protocol"
)

// labelsAbove are, per text, the names of the labels scored at or above
// the model's threshold, highest score first: a multi-label answer.
func (r render) labelsAbove(l protocol.Logits) [][]string {
	out := make([][]string, len(l))
	for i, row := range l {
		out[i] = []string{}
		for _, s := range r.ranked(row) {
			if float64(s.Score) < r.threshold {
				break
			}
			out[i] = append(out[i], s.Label)
		}
	}
	return out
}

// namedScores are, per text, every label with its score, highest first
// (the first topK when set), as transformers' pipeline answers.
func (r render) namedScores(l protocol.Logits) [][]protocol.LabelScore {
	out := make([][]protocol.LabelScore, len(l))
	for i, row := range l {
		s := r.ranked(row)
		if r.topK > 0 && r.topK < len(s) {
			s = s[:r.topK]
		}
		out[i] = s
	}
	return out
}

// ranked is one text's scores sorted high to low; equal scores keep label
// order, as the pipeline's stable sort does.
func (r render) ranked(row []float32) []protocol.LabelScore {
	p := r.probs(row)
	s := make([]protocol.LabelScore, len(p))
	for j, v := range p {
		// Rows have one logit per label: Model.Predict checks the shape.
		s[j] = protocol.LabelScore{Label: r.names[j], Score: v}
	}
	sort.SliceStable(s, func(a, b int) bool { return s[a].Score > s[b].Score })
	return s
}

// jsonStrings encodes each text's answer as one JSON string: an OIP BYTES
// element per text (OIP tensors cannot nest lists of objects).
func jsonStrings[T any](v []T) []string {
	out := make([]string, len(v))
	for i, x := range v {
		b, err := json.Marshal(x)
		if err != nil {
			b = []byte("null") // unreachable: labels and float32 scores always encode
		}
		out[i] = string(b)
	}
	return out
}
