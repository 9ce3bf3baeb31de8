package protocol

import (
	"encoding/json"
	"strings"
)

// Open Inference Protocol V2 datatypes Chorus uses.
const (
	DatatypeBYTES = "BYTES"
	DatatypeINT64 = "INT64"
	DatatypeFP32  = "FP32"
)

// InferRequest is the OIP V2 inference request body.
type InferRequest struct {
	ID         string                     `json:"id,omitempty"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
	Inputs     []RequestInput             `json:"inputs"`
	Outputs    []RequestOutput            `json:"outputs,omitempty"`
}

// RequestInput is one input tensor of a V2 request.
type RequestInput struct {
	Name       string                     `json:"name"`
	Shape      []int64                    `json:"shape"`
	Datatype   string                     `json:"datatype"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
	Data       json.RawMessage            `json:"data"`
}

// RequestOutput asks for one output by name.
type RequestOutput struct {
	Name       string                     `json:"name"`
	Parameters map[string]json.RawMessage `json:"parameters,omitempty"`
}

// V2Request is a decoded, checked V2 request.
type V2Request struct {
	ID      string
	Texts   []string
	Outputs []string // requested output names, in order; empty: the default
	// Cache is parameters.cache: false opts out of the logits cache.
	Cache *bool
}

// DecodeV2 parses and checks a V2 body: one BYTES input whose shape matches
// its data, string elements, and known output names (see the Output*
// constants; member outputs of later features are checked by the caller).
func DecodeV2(body []byte, knownOutputs []string) (V2Request, error) {
	var w struct {
		InferRequest
		Inputs *[]RequestInput `json:"inputs"`
	}
	if err := decodeJSON(body, &w); err != nil {
		return V2Request{}, err
	}
	if w.Inputs == nil {
		return V2Request{}, invalid(`missing "inputs": want {"inputs": [{"name": "input-0", "shape": [n], "datatype": "BYTES", "data": [...]}]}`)
	}
	if len(*w.Inputs) != 1 {
		return V2Request{}, invalid(`"inputs" has %d tensors, want exactly one BYTES tensor of texts`, len(*w.Inputs))
	}
	in := (*w.Inputs)[0]
	name := in.Name
	if name == "" {
		name = "inputs[0]"
	}
	if in.Datatype != DatatypeBYTES {
		return V2Request{}, invalid("input %q: datatype %q is not supported, want %q (texts)", name, in.Datatype, DatatypeBYTES)
	}
	if len(in.Shape) == 0 {
		return V2Request{}, invalid("input %q: missing shape, want [n] for n texts", name)
	}
	want := int64(1)
	for _, d := range in.Shape {
		if d < 0 {
			return V2Request{}, invalid("input %q: shape %v has a negative dimension", name, in.Shape)
		}
		want *= d
		if want > 1<<31 {
			return V2Request{}, invalid("input %q: shape %v is too large", name, in.Shape)
		}
	}
	if len(in.Data) == 0 {
		return V2Request{}, invalid(`input %q: missing "data"`, name)
	}
	texts, err := flattenStrings(in.Data, name)
	if err != nil {
		return V2Request{}, err
	}
	if int64(len(texts)) != want {
		return V2Request{}, invalid("input %q: shape %v holds %d elements, data has %d", name, in.Shape, want, len(texts))
	}
	if len(texts) == 0 {
		return V2Request{}, invalid("input %q is empty: send at least one text", name)
	}
	req := V2Request{ID: w.ID, Texts: texts}
	if req.Cache, err = boolParam(w.Parameters, "cache"); err != nil {
		return V2Request{}, err
	}
	for i, o := range w.Outputs {
		known := false
		for _, k := range knownOutputs {
			known = known || o.Name == k
		}
		if !known {
			return V2Request{}, invalid("outputs[%d]: unknown output %q (known: %s)", i, o.Name, strings.Join(knownOutputs, ", "))
		}
		req.Outputs = append(req.Outputs, o.Name)
	}
	return req, nil
}

// flattenStrings reads data as strings in row-major order: OIP allows the
// flat form ["a", "b"] and the nested form [["a"], ["b"]].
func flattenStrings(raw json.RawMessage, name string) ([]string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, invalid("input %q: data is %s, want an array of strings", name, jsonKind(raw))
	}
	var out []string
	for i, item := range items {
		if s, ok := jsonString(item); ok {
			out = append(out, s)
			continue
		}
		if len(item) > 0 && item[0] == '[' {
			nested, err := flattenStrings(item, name)
			if err != nil {
				return nil, err
			}
			out = append(out, nested...)
			continue
		}
		return nil, invalid("input %q: data[%d] is %s, want a string (BYTES)", name, i, jsonKind(item))
	}
	return out, nil
}

// InferResponse is the OIP V2 inference response, in the field order and
// with the nulls KServe's Python server writes.
type InferResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion *string        `json:"model_version"`
	ID           string         `json:"id"`
	Parameters   map[string]any `json:"parameters"`
	Outputs      []OutputTensor `json:"outputs"`
}

// OutputTensor is one output of a V2 response; Data is flat, row-major.
type OutputTensor struct {
	Name       string         `json:"name"`
	Shape      []int          `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters"`
	Data       any            `json:"data"`
}

// TensorMetadata describes an input or output in model metadata.
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// ModelMetadataResponse is GET /v2/models/{name}.
type ModelMetadataResponse struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions,omitempty"`
	Platform string           `json:"platform"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
	// Parameters (an OIP extension point) carry the label names, the
	// fingerprint and the temperature, which calibration tools need.
	Parameters map[string]any `json:"parameters,omitempty"`
}

// ServerMetadataResponse is GET /v2.
type ServerMetadataResponse struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// ErrorResponse is every error body: {"error": "..."}.
type ErrorResponse struct {
	Error string `json:"error"`
}
