package config

import "testing"

// onnx_file reaches the replica as written: Hub repos and local folders.
func TestONNXFile(t *testing.T) {
	cfg, err := Load("testdata/onnx-file.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Models[0].Replicas[0].ONNXFile; got != "onnx/model_quantized.onnx" {
		t.Errorf("hub replica onnx_file %q", got)
	}
	if got := cfg.Models[1].Replicas[0].ONNXFile; got != "onnx/model.onnx" {
		t.Errorf("local replica onnx_file %q", got)
	}
}
