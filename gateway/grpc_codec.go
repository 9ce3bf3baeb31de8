package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/protocol/oippb"
)

// decodeGRPCInfer reads a ModelInferRequest into the request the HTTP
// decoder gives, with the same checks: one BYTES input whose texts come
// from contents.bytes_contents or from raw_input_contents (what
// tritonclient and the kserve SDK send by default), a shape that fits them
// ([] and [-1] fit any count), and known outputs. raw reports whether the
// input came raw; the answer then comes raw too.
func decodeGRPCInfer(in *oippb.ModelInferRequest) (req protocol.V2Request, raw bool, err error) {
	inputs := in.GetInputs()
	if len(inputs) != 1 {
		return req, false, fmt.Errorf("%w: %d input tensors, want exactly one BYTES tensor of texts", protocol.ErrInvalidInput, len(inputs))
	}
	t := inputs[0]
	name := t.GetName()
	if name == "" {
		name = "inputs[0]"
	}
	if t.GetDatatype() != protocol.DatatypeBYTES {
		return req, false, fmt.Errorf("%w: input %q: datatype %q is not supported, want %q (texts)", protocol.ErrInvalidInput, name, t.GetDatatype(), protocol.DatatypeBYTES)
	}
	c := t.GetContents()
	if others := len(c.GetBoolContents()) + len(c.GetIntContents()) + len(c.GetInt64Contents()) + len(c.GetUintContents()) +
		len(c.GetUint64Contents()) + len(c.GetFp32Contents()) + len(c.GetFp64Contents()); others > 0 {
		return req, false, fmt.Errorf("%w: input %q: BYTES data must be in contents.bytes_contents or raw_input_contents", protocol.ErrInvalidInput, name)
	}
	var texts []string
	switch rawIn := in.GetRawInputContents(); {
	case len(rawIn) > 0 && len(rawIn) != len(inputs):
		return req, false, fmt.Errorf("%w: %d raw_input_contents for %d inputs", protocol.ErrInvalidInput, len(rawIn), len(inputs))
	case len(rawIn) > 0 && len(c.GetBytesContents()) > 0:
		return req, false, fmt.Errorf("%w: input %q: both contents and raw_input_contents", protocol.ErrInvalidInput, name)
	case len(rawIn) > 0:
		raw = true
		if texts, err = protocol.TextsFromBytesTensor(name, t.GetShape(), rawIn[0]); err != nil {
			return req, false, err
		}
	default:
		for _, b := range c.GetBytesContents() {
			texts = append(texts, string(b))
		}
	}
	if err := protocol.CheckTextShape(name, t.GetShape(), len(texts)); err != nil {
		return req, false, err
	}
	texts, pairs, err := protocol.SplitRows(name, t.GetShape(), texts)
	if err != nil {
		return req, false, err
	}
	req = protocol.V2Request{ID: in.GetId(), Texts: texts, Pairs: pairs}
	params := in.GetParameters()
	for _, b := range []struct {
		name string
		dst  **bool
	}{{"cache", &req.Cache}, {"truncate", &req.Truncate}} {
		if p, ok := params[b.name]; ok {
			v, isBool := p.GetParameterChoice().(*oippb.InferParameter_BoolParam)
			if !isBool {
				return req, false, fmt.Errorf("%w: parameters.%s is not a bool_param", protocol.ErrInvalidInput, b.name)
			}
			*b.dst = &v.BoolParam
		}
	}
	if p, ok := params["top_k"]; ok {
		v, isInt := p.GetParameterChoice().(*oippb.InferParameter_Int64Param)
		if !isInt || v.Int64Param <= 0 || v.Int64Param > 1<<31 {
			return req, false, fmt.Errorf("%w: parameters.top_k is not a positive int64_param", protocol.ErrInvalidInput)
		}
		req.TopK = int(v.Int64Param)
	}
	for i, o := range in.GetOutputs() {
		if !slices.Contains(v2OutputNames, o.GetName()) {
			return req, false, fmt.Errorf("%w: outputs[%d]: unknown output %q (known: %s)", protocol.ErrInvalidInput, i, o.GetName(), strings.Join(v2OutputNames, ", "))
		}
		req.Outputs = append(req.Outputs, o.GetName())
	}
	return req, raw, nil
}

// encodeGRPCInfer writes a V2 answer as a ModelInferResponse: outputs in
// raw_output_contents when raw (tritonclient reads only those), else in
// typed contents.
func encodeGRPCInfer(resp protocol.InferResponse, raw bool) (*oippb.ModelInferResponse, error) {
	out := &oippb.ModelInferResponse{ModelName: resp.ModelName, Id: resp.ID, Parameters: grpcParameters(resp.Parameters)}
	if resp.ModelVersion != nil {
		out.ModelVersion = *resp.ModelVersion
	}
	for _, o := range resp.Outputs {
		t := &oippb.ModelInferResponse_InferOutputTensor{Name: o.Name, Datatype: o.Datatype, Parameters: grpcParameters(o.Parameters)}
		for _, d := range o.Shape {
			t.Shape = append(t.Shape, int64(d))
		}
		if raw {
			b, ok := protocol.AppendTensor(nil, o.Data)
			if !ok {
				return nil, fmt.Errorf("output %q: %T has no binary form", o.Name, o.Data)
			}
			out.RawOutputContents = append(out.RawOutputContents, b)
		} else {
			c := &oippb.InferTensorContents{}
			switch d := o.Data.(type) {
			case []string:
				for _, s := range d {
					c.BytesContents = append(c.BytesContents, []byte(s))
				}
			case []int64:
				c.Int64Contents = d
			case protocol.FP32:
				c.Fp32Contents = d
			default:
				return nil, fmt.Errorf("output %q: %T has no gRPC contents", o.Name, o.Data)
			}
			t.Contents = c
		}
		out.Outputs = append(out.Outputs, t)
	}
	return out, nil
}

// grpcParameters converts OIP scalar parameters; nil for none.
func grpcParameters(p map[string]any) map[string]*oippb.InferParameter {
	if len(p) == 0 {
		return nil
	}
	out := make(map[string]*oippb.InferParameter, len(p))
	for k, v := range p {
		switch v := v.(type) {
		case bool:
			out[k] = &oippb.InferParameter{ParameterChoice: &oippb.InferParameter_BoolParam{BoolParam: v}}
		case int:
			out[k] = &oippb.InferParameter{ParameterChoice: &oippb.InferParameter_Int64Param{Int64Param: int64(v)}}
		case int64:
			out[k] = &oippb.InferParameter{ParameterChoice: &oippb.InferParameter_Int64Param{Int64Param: v}}
		case float64:
			out[k] = &oippb.InferParameter{ParameterChoice: &oippb.InferParameter_DoubleParam{DoubleParam: v}}
		default:
			out[k] = &oippb.InferParameter{ParameterChoice: &oippb.InferParameter_StringParam{StringParam: fmt.Sprint(v)}}
		}
	}
	return out
}
