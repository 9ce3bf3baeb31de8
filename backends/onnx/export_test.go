package onnx

import (
	"context"

	"github.com/chorusml/chorus/protocol"
)

// PredictIDs runs token ids as they are (one single-text window each):
// what the long-text tests compare the combined windows against.
func (m *Model) PredictIDs(ctx context.Context, ids [][]int64) (protocol.Logits, error) {
	p, err := m.predict(ctx, len(ids), func(i int) (encoding, error) {
		e := encoding{ids: ids[i], mask: ones(len(ids[i]))}
		if m.withTypes {
			e.typeIDs = make([]int64, len(ids[i]))
		}
		return e, nil
	})
	return p.Logits, err
}

// PredictOverlapping runs texts as one batch on the session of runs that
// overlap another; ok is false when the model has none.
func (m *Model) PredictOverlapping(ctx context.Context, texts []string) (logits protocol.Logits, ok bool, err error) {
	if m.overlap == nil {
		return nil, false, nil
	}
	encs := make([]encoding, len(texts))
	for i, t := range texts {
		if encs[i], err = m.encode(t); err != nil {
			return nil, true, err
		}
	}
	logits, err = m.runBatch(ctx, m.overlap, encs, 0)
	return logits, true, err
}
