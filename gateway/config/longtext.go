package config

import (
	"fmt"

	"github.com/chorusml/chorus/backends/onnx"
)

// LongText is how a model classifies texts longer than it takes.
type LongText struct {
	// Mode is truncate (default: the first max_length tokens decide, as
	// transformers and KServe do) or chunk (the whole text decides: it is
	// cut into overlapping windows of tokens, each window gets the special
	// tokens, the windows are scored as one batch and their logits
	// combined before temperature and activation). Chunk needs in-process
	// replicas (type: onnx): remote protocols take texts, not token windows.
	Mode string `yaml:"mode"`
	// Window is the tokens of one window, special tokens included. Default
	// 0: the model's max length (512 for BERT-family models).
	Window int `yaml:"window"`
	// Stride is how many tokens consecutive windows share, as
	// transformers' stride. Default 0: windows do not overlap.
	Stride int `yaml:"stride"`
	// Combine is mean_logits (default: the windows' logits averaged,
	// weighted by their real tokens) or max_probs (per label, the highest
	// probability any window gives it: for multi-label models, where one
	// window mentioning a label should be enough).
	Combine string `yaml:"combine"`
}

// Long-text modes.
const (
	LongTextTruncate = "truncate"
	LongTextChunk    = "chunk"
)

// Chunked reports whether the model windows long texts.
func (l LongText) Chunked() bool { return l.Mode == LongTextChunk }

func (l *LongText) applyDefaults() {
	if l.Mode == "" {
		l.Mode = LongTextTruncate
	}
	if l.Chunked() && l.Combine == "" {
		l.Combine = onnx.CombineMeanLogits
	}
}

func (m *Model) validateLongText(path string, errs *problems) {
	l := m.LongText
	path += ".long_text"
	switch l.Mode {
	case LongTextTruncate:
		if l.Window != 0 || l.Stride != 0 || l.Combine != "" {
			errs.add(path, "window, stride and combine are for mode: chunk")
		}
		return
	case LongTextChunk:
	default:
		errs.add(path+".mode", "%q: want %s or %s", l.Mode, LongTextTruncate, LongTextChunk)
		return
	}
	if m.IsEnsemble() || m.IsCascade() {
		errs.add(path, "set long_text on the models an ensemble or cascade is made of")
		return
	}
	if l.Window < 0 {
		errs.add(path+".window", "%d: must be positive", l.Window)
	}
	if l.Stride < 0 || (l.Window > 0 && l.Stride >= l.Window) {
		errs.add(path+".stride", "%d: want 0 up to less than the window", l.Stride)
	}
	if l.Combine != onnx.CombineMeanLogits && l.Combine != onnx.CombineMaxProbs {
		errs.add(path+".combine", "%q: want %s or %s", l.Combine, onnx.CombineMeanLogits, onnx.CombineMaxProbs)
	}
	check := func(rpath string, rs []Replica) {
		for j, r := range rs {
			if r.Type != TypeONNX {
				errs.add(fmt.Sprintf("%s[%d].type", rpath, j), "%q: long_text chunk needs in-process replicas (type: onnx): remote protocols take texts, not token windows", r.Type)
			}
		}
	}
	check(fmt.Sprintf("models[%s].replicas", m.Name), m.Replicas)
	for _, v := range m.Versions {
		check(fmt.Sprintf("models[%s].versions[%s].replicas", m.Name, v.Name), v.Replicas)
	}
}
