package kserve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/chorusml/chorus/protocol"
)

// Reading a remote's answer: KServe's string-dicts or a tensor of logits,
// over V1 or V2, and what a Chorus remote says it truncated.

func (b *Backend) decodeV1(data []byte) (protocol.Logits, error) {
	var resp struct {
		Predictions []json.RawMessage `json:"predictions"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("%w: V1 response is not JSON: %v", protocol.ErrBadGateway, err) //nolint:errorlint // detail
	}
	out := make(protocol.Logits, len(resp.Predictions))
	for i, p := range resp.Predictions {
		row, err := v1Row(p, b.cfg.Logits)
		if err != nil {
			return nil, fmt.Errorf("%w: predictions[%d]: %w", protocol.ErrBadGateway, i, err)
		}
		out[i] = row
	}
	return out, nil
}

// v1Row reads one V1 prediction: a {"0": x, "1": y} object (KServe) or an
// [x, y] array (tensor).
func v1Row(raw json.RawMessage, format string) ([]float32, error) {
	if format == LogitsTensor {
		var row []float32
		if err := json.Unmarshal(raw, &row); err != nil {
			return nil, fmt.Errorf("want an array of numbers: %w", err)
		}
		return row, nil
	}
	var obj map[string]float64
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf(`want {"0": logit, ...}: %w`, err)
	}
	row := make([]float32, len(obj))
	for i := range row {
		v, ok := obj[fmt.Sprint(i)]
		if !ok {
			return nil, fmt.Errorf("labels are not 0..%d", len(obj)-1)
		}
		row[i] = float32(v)
	}
	return row, nil
}

func (b *Backend) decodeV2(data []byte) (protocol.Logits, error) {
	resp, err := protocol.DecodeResponse(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", protocol.ErrBadGateway, err)
	}
	if b.cfg.Logits == LogitsTensor {
		o, err := resp.Output(b.cfg.OutputName)
		if err == nil {
			var l protocol.Logits
			if l, err = o.Rows(); err == nil {
				return l, nil
			}
		}
		return nil, fmt.Errorf("%w: %w", protocol.ErrBadGateway, err)
	}
	o, err := resp.Output(protocol.OutputDefault)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", protocol.ErrBadGateway, err)
	}
	strs, err := o.Strings()
	if err != nil {
		return nil, fmt.Errorf("%w: %v: want string-dicts of logits (is the remote running with --return_raw_logits, or --disable_postprocess?)", protocol.ErrBadGateway, err) //nolint:errorlint // detail
	}
	out := make(protocol.Logits, len(strs))
	for i, s := range strs {
		row, err := protocol.ParsePyDict(s)
		if err != nil {
			return nil, fmt.Errorf("output %q[%d]: %w", o.Name, i, err)
		}
		out[i] = row
	}
	return out, nil
}

// truncatedInputs reads which inputs a Chorus remote cut: its answer's
// parameters.truncated_inputs, indices comma-joined (V1 and V2 alike).
// Other remotes do not say; nothing is reported for them.
func truncatedInputs(body []byte, n int) []int {
	// Most answers cut nothing and say nothing: skip a second parse.
	if !bytes.Contains(body, []byte(`"truncated_inputs"`)) {
		return nil
	}
	var resp struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
	}
	var list string
	if json.Unmarshal(body, &resp) != nil || json.Unmarshal(resp.Parameters["truncated_inputs"], &list) != nil || list == "" {
		return nil
	}
	var out []int
	for _, f := range strings.Split(list, ",") {
		if i, err := strconv.Atoi(f); err == nil && i >= 0 && i < n {
			out = append(out, i)
		}
	}
	return out
}
