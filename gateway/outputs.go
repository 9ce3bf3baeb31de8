package gateway

import (
	"cmp"
	"strings"

	"github.com/chorusml/chorus/calibration"
	"github.com/chorusml/chorus/protocol"
)

// v2OutputNames are the outputs a V2 request may name.
var v2OutputNames = []string{protocol.OutputDefault, protocol.OutputLabel, protocol.OutputProbabilities,
	protocol.OutputLogits, protocol.OutputCalibratedLogits, protocol.OutputMemberLogits,
	protocol.OutputLabels, protocol.OutputScores, OutputStage}

// render turns raw logits into a model's outputs: its default mode, its
// temperature (applied before every activation; labels and raw logits are
// unaffected by construction), its activation, and for ensembles what
// each member said.
type render struct {
	mode      Mode
	t         float64 // temperature; 1 when the model has none
	cal       *calibration.Calibrator
	act       calibration.Activation
	threshold float64
	names     []string // label names, for the labels and scores outputs
	// topK limits the scores output per text (0: every label).
	topK    int
	members []memberResult
}

func newRender(m Servable, members []memberResult) render {
	s := m.Scoring()
	return render{mode: s.Mode, t: s.Temperature, cal: s.Calibrator, act: s.Activation,
		threshold: cmp.Or(s.Threshold, DefaultThreshold), names: m.Metadata().Labels, members: members}
}

// memberResult is what one ensemble member contributed.
type memberResult struct {
	Name   string
	Weight float64
	Logits protocol.Logits
}

func argmax(row []float32) int64 { return int64(calibration.Argmax(row)) }

// softmax is softmax(row / t) rounded to float32 per element, as a torch
// float32 tensor holds it: KServe formats those values, so its probability
// strings come out byte for byte the same.
func softmax(row []float32, t float64) []float32 {
	var buf [16]float64 // most heads have a few labels: no float64 slice to allocate
	p := buf[:]
	if len(row) > len(buf) {
		p = make([]float64, len(row))
	}
	p = calibration.SoftmaxTo(p[:len(row)], row, t)
	out := make([]float32, len(p))
	for j, v := range p {
		out[j] = float32(v)
	}
	return out
}

// probs are the model's scores of one text: its activation (softmax,
// sigmoid or none) of the calibrated logits, rounded to float32 as torch
// holds them.
func (r render) probs(row []float32) []float32 {
	t := r.t
	if r.cal != nil {
		row, t = r.cal.Apply(row), 1
	}
	if r.act == "" || r.act == calibration.ActivationSoftmax {
		return softmax(row, t) // the bits KServe's strings depend on
	}
	p := calibration.Scores(r.act, row, t)
	out := make([]float32, len(p))
	for j, v := range p {
		out[j] = float32(v)
	}
	return out
}

func (r render) calibrated(row []float32) []float32 {
	if r.cal != nil {
		return r.cal.Apply(row)
	}
	return r.scaled(make([]float32, 0, len(row)), row)
}

// scaled appends row, divided by the temperature, to dst.
func (r render) scaled(dst, row []float32) []float32 {
	for _, v := range row {
		dst = append(dst, float32(float64(v)/r.t))
	}
	return dst
}

// calibratedRows is calibrated for every row, the rows sharing one array.
func (r render) calibratedRows(rows [][]float32) [][]float32 {
	out := make([][]float32, len(rows))
	if r.cal != nil { // a calibrator makes its own rows
		for i, row := range rows {
			out[i] = r.calibrated(row)
		}
		return out
	}
	n := 0
	for _, row := range rows {
		n += len(row)
	}
	flat := make([]float32, 0, n)
	for i, row := range rows {
		flat = r.scaled(flat, row)
		out[i] = flat[len(flat)-len(row) : len(flat) : len(flat)]
	}
	return out
}

func identity(row []float32) []float32 { return row }

func labels(l protocol.Logits) []int64 {
	out := make([]int64, len(l))
	for i, row := range l {
		out[i] = argmax(row)
	}
	return out
}

// kserveStrings are the BYTES elements KServe's Hugging Face server returns
// in its probability and raw-logit modes: str() of a Python dict per text.
func (r render) kserveStrings(l protocol.Logits) []string {
	out := make([]string, len(l))
	for i, row := range l {
		if r.mode == ModeProbabilities {
			out[i] = protocol.PyDict(r.probs(row), protocol.PyRound4)
		} else {
			out[i] = protocol.PyDict(row, protocol.PyRepr)
		}
	}
	return out
}

// v1Predictions builds V1 "predictions" for output ("" = the model's mode).
func (r render) v1Predictions(l protocol.Logits, output string) any {
	switch output {
	case protocol.OutputLabel:
		return labels(l)
	case protocol.OutputProbabilities:
		return rows(l, r.probs)
	case protocol.OutputLogits:
		return rows(l, identity)
	case protocol.OutputCalibratedLogits:
		return rows(l, r.calibrated)
	case protocol.OutputLabels:
		return r.labelsAbove(l)
	case protocol.OutputScores:
		return r.namedScores(l)
	}
	switch r.mode {
	case ModeProbabilities:
		out := make([]protocol.PyNumberDict, len(l))
		for i, row := range l {
			out[i] = protocol.PyNumberDict{Values: r.probs(row), Format: protocol.PyRound4}
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

// v1Members is the V1 "members" field of an explained ensemble answer.
func (r render) v1Members() []map[string]any {
	out := make([]map[string]any, len(r.members))
	for i, m := range r.members {
		out[i] = map[string]any{"name": m.Name, "weight": m.Weight, "logits": rows(m.Logits, identity)}
	}
	return out
}

// v2Outputs builds the requested V2 outputs (none named: output-0).
func (r render) v2Outputs(l protocol.Logits, names []string) []protocol.OutputTensor {
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
		case name == protocol.OutputDefault && r.mode != ModeLabel:
			t.Datatype, t.Data = protocol.DatatypeBYTES, r.kserveStrings(l)
		case name == protocol.OutputDefault, name == protocol.OutputLabel:
			t.Datatype, t.Data = protocol.DatatypeINT64, labels(l)
		case name == protocol.OutputProbabilities:
			t.Shape, t.Datatype, t.Data = []int{n, k}, protocol.DatatypeFP32, flat(l, r.probs)
		case name == protocol.OutputLogits:
			t.Shape, t.Datatype, t.Data = []int{n, k}, protocol.DatatypeFP32, flat(l, identity)
		case name == protocol.OutputCalibratedLogits:
			t.Shape, t.Datatype, t.Data = []int{n, k}, protocol.DatatypeFP32, flat(l, r.calibrated)
		case name == protocol.OutputLabels:
			t.Datatype, t.Data = protocol.DatatypeBYTES, jsonStrings(r.labelsAbove(l))
			t.Parameters = map[string]any{"threshold": r.threshold, "content_type": "application/json"}
		case name == protocol.OutputScores:
			t.Datatype, t.Data = protocol.DatatypeBYTES, jsonStrings(r.namedScores(l))
			t.Parameters = map[string]any{"content_type": "application/json"}
		case name == protocol.OutputMemberLogits:
			var data protocol.FP32
			names, weights := []string{}, []float64{}
			for _, m := range r.members {
				data = append(data, flat(m.Logits, identity)...)
				names, weights = append(names, m.Name), append(weights, m.Weight)
			}
			t.Shape, t.Datatype, t.Data = []int{len(r.members), n, k}, protocol.DatatypeFP32, data
			// OIP parameters are scalars: the member order as one string.
			t.Parameters = map[string]any{"members": strings.Join(names, ","), "weights": joinFloats(weights)}
		}
		out = append(out, t)
	}
	return out
}

func flat(l protocol.Logits, f func([]float32) []float32) protocol.FP32 {
	out := protocol.FP32{}
	for _, row := range l {
		out = append(out, f(row)...)
	}
	return out
}

// outputsMetadata lists a model's V2 outputs for GET /v2/models/{name}.
func outputsMetadata(mode Mode, k int, ensemble bool) []protocol.TensorMetadata {
	def := protocol.DatatypeINT64
	if mode != ModeLabel {
		def = protocol.DatatypeBYTES
	}
	out := []protocol.TensorMetadata{
		{Name: protocol.OutputDefault, Datatype: def, Shape: []int64{-1}},
		{Name: protocol.OutputLabel, Datatype: protocol.DatatypeINT64, Shape: []int64{-1}},
		{Name: protocol.OutputProbabilities, Datatype: protocol.DatatypeFP32, Shape: []int64{-1, int64(k)}},
		{Name: protocol.OutputLogits, Datatype: protocol.DatatypeFP32, Shape: []int64{-1, int64(k)}},
		{Name: protocol.OutputCalibratedLogits, Datatype: protocol.DatatypeFP32, Shape: []int64{-1, int64(k)}},
	}
	out = append(out,
		protocol.TensorMetadata{Name: protocol.OutputLabels, Datatype: protocol.DatatypeBYTES, Shape: []int64{-1}},
		protocol.TensorMetadata{Name: protocol.OutputScores, Datatype: protocol.DatatypeBYTES, Shape: []int64{-1}})
	if ensemble {
		out = append(out, protocol.TensorMetadata{Name: protocol.OutputMemberLogits, Datatype: protocol.DatatypeFP32, Shape: []int64{-1, -1, int64(k)}})
	}
	return out
}
