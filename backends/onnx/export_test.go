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
