package onnx

import (
	"context"

	"github.com/chorusml/chorus/protocol"
)

var _ protocol.PairPredictor = (*Model)(nil)

// TakesPairs is true: every tokenizer family pairs texts as transformers
// does.
func (m *Model) TakesPairs() bool { return true }

// PredictPairs scores text pairs (NLI premise and hypothesis, a
// cross-encoder's query and passage): row i holds the logits of pairs[i].
// Each pair is tokenized as transformers does for the model's tokenizer —
// BERT's [CLS] A [SEP] B [SEP] with token type ids 0 then 1, RoBERTa's
// <s> A </s></s> B </s> — and truncated longest_first to MaxLength. The
// contract is Predict's otherwise: shapes, cancellation, errors, batching.
func (m *Model) PredictPairs(ctx context.Context, pairs [][2]string) (protocol.Logits, error) {
	p, err := m.PredictTextPairs(ctx, pairs)
	return p.Logits, err
}

// PredictTextPairs is PredictPairs, also saying which pairs were truncated.
func (m *Model) PredictTextPairs(ctx context.Context, pairs [][2]string) (Prediction, error) {
	return m.predict(ctx, len(pairs), func(i int) (encoding, error) { return m.encodePair(pairs[i][0], pairs[i][1]) })
}

// TokenizePair returns the token ids and token type ids the model is fed
// for a pair, after truncation, before padding. Type ids are nil when the
// graph takes none.
func (m *Model) TokenizePair(a, b string) (ids, typeIDs []int64, err error) {
	enc, err := m.encodePair(a, b)
	return enc.ids, enc.typeIDs, err
}
