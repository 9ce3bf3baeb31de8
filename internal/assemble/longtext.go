package assemble

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorusml/chorus/backends/onnx"
	"github.com/chorusml/chorus/gateway"
	"github.com/chorusml/chorus/gateway/config"
)

// longText is an in-process replica's windowing, or nil when the model
// truncates.
func longText(mc config.Model) *onnx.LongText {
	if !mc.LongText.Chunked() {
		return nil
	}
	return &onnx.LongText{Window: mc.LongText.Window, Stride: mc.LongText.Stride, Combine: mc.LongText.Combine}
}

// windowsMetric is what a chunking model reports its windows per text to
// (nil options when it truncates: it reports none).
func (b *builder) windowsMetric(mc config.Model) (*gateway.WindowsReport, error) {
	if !mc.LongText.Chunked() {
		return nil, nil
	}
	var h prometheus.ObserverVec
	if b.Metrics != nil {
		vec, err := b.Metrics.LongTextWindows()
		if err != nil {
			return nil, err
		}
		h = vec
	}
	return &gateway.WindowsReport{Histogram: h}, nil
}
