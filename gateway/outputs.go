package gateway

import (
	"math"

	"github.com/chorusml/chorus/protocol"
)

// v2OutputNames are the outputs a V2 request may name.
var v2OutputNames = []string{protocol.OutputDefault, protocol.OutputLabel, protocol.OutputProbabilities, protocol.OutputLogits}

// argmax returns the first index of the largest value, as torch.argmax does.
func argmax(row []float32) int64 {
	best := 0
	for j, v := range row {
		if v > row[best] {
			best = j
		}
	}
	return int64(best)
}

// softmax is computed in float64 with the maximum subtracted, so large
// logits cannot overflow, then rounded to float32 like a torch tensor.
func softmax(row []float32) []float32 {
	m := math.Inf(-1)
	for _, v := range row {
		m = math.Max(m, float64(v))
	}
	sum := 0.0
	e := make([]float64, len(row))
	for j, v := range row {
		e[j] = math.Exp(float64(v) - m)
		sum += e[j]
	}
	out := make([]float32, len(row))
	for j := range e {
		out[j] = float32(e[j] / sum)
	}
	return out
}

func identity(r []float32) []float32 { return r }

func labels(l protocol.Logits) []int64 {
	out := make([]int64, len(l))
	for i, row := range l {
		out[i] = argmax(row)
	}
	return out
}

// kserveStrings are the BYTES elements KServe's Hugging Face server returns
// in its probability and raw-logit modes: str() of a Python dict per text.
func kserveStrings(l protocol.Logits, mode Mode) []string {
	out := make([]string, len(l))
	for i, row := range l {
		if mode == ModeProbabilities {
			out[i] = protocol.PyDict(softmax(row), protocol.PyRound4)
		} else {
			out[i] = protocol.PyDict(row, protocol.PyRepr)
		}
	}
	return out
}

// v1Predictions builds V1 "predictions" for output ("" = the model's mode).
func v1Predictions(mode Mode, l protocol.Logits, output string) any {
	switch output {
	case protocol.OutputLabel:
		return labels(l)
	case protocol.OutputProbabilities:
		return rows(l, softmax)
	case protocol.OutputLogits:
		return rows(l, identity)
	}
	switch mode {
	case ModeProbabilities:
		out := make([]protocol.PyNumberDict, len(l))
		for i, row := range l {
			out[i] = protocol.PyNumberDict{Values: softmax(row), Format: protocol.PyRound4}
		}
		return out
	case ModeRawLogits:
		out := make([]protocol.PyNumberDict, len(l))
		for i, row := range l {
			out[i] = protocol.PyNumberDict{Values: row, Format: protocol.PyRepr}
		}
		return out
	default:
		return labels(l)
	}
}

func rows(l protocol.Logits, f func([]float32) []float32) []protocol.FP32 {
	out := make([]protocol.FP32, len(l))
	for i, row := range l {
		out[i] = f(row)
	}
	return out
}

// v2Outputs builds the requested V2 outputs (none named: output-0).
func v2Outputs(mode Mode, l protocol.Logits, names []string) []protocol.OutputTensor {
	if len(names) == 0 {
		names = []string{protocol.OutputDefault}
	}
	n := len(l)
	k := 0
	if n > 0 {
		k = len(l[0])
	}
	out := make([]protocol.OutputTensor, 0, len(names))
	for _, name := range names {
		t := protocol.OutputTensor{Name: name, Shape: []int{n}}
		switch {
		case name == protocol.OutputDefault && mode != ModeLabel:
			t.Datatype, t.Data = protocol.DatatypeBYTES, kserveStrings(l, mode)
		case name == protocol.OutputDefault, name == protocol.OutputLabel:
			t.Datatype, t.Data = protocol.DatatypeINT64, labels(l)
		case name == protocol.OutputProbabilities:
			t.Shape, t.Datatype, t.Data = []int{n, k}, protocol.DatatypeFP32, flat(l, softmax)
		case name == protocol.OutputLogits:
			t.Shape, t.Datatype, t.Data = []int{n, k}, protocol.DatatypeFP32, flat(l, identity)
		}
		out = append(out, t)
	}
	return out
}

func flat(l protocol.Logits, f func([]float32) []float32) protocol.FP32 {
	var out protocol.FP32
	for _, row := range l {
		out = append(out, f(row)...)
	}
	return out
}

// outputsMetadata lists a model's V2 outputs for GET /v2/models/{name}.
func outputsMetadata(mode Mode, k int) []protocol.TensorMetadata {
	def := protocol.DatatypeINT64
	if mode != ModeLabel {
		def = protocol.DatatypeBYTES
	}
	return []protocol.TensorMetadata{
		{Name: protocol.OutputDefault, Datatype: def, Shape: []int64{-1}},
		{Name: protocol.OutputLabel, Datatype: protocol.DatatypeINT64, Shape: []int64{-1}},
		{Name: protocol.OutputProbabilities, Datatype: protocol.DatatypeFP32, Shape: []int64{-1, int64(k)}},
		{Name: protocol.OutputLogits, Datatype: protocol.DatatypeFP32, Shape: []int64{-1, int64(k)}},
	}
}
