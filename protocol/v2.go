package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
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
	ID    string
	Texts []string
	// Pairs are the text pairs of an input of shape [n, 2] (Texts is nil).
	Pairs   [][2]string
	Outputs []string // requested output names, in order; empty: the default
	// Cache is parameters.cache: false opts out of the logits cache.
	Cache *bool
	// TopK is parameters.top_k: how many named scores per text in the
	// scores output (0: all).
	TopK int
	// Truncate is parameters.truncate: false refuses an over-length text
	// (413) instead of cutting it.
	Truncate *bool
	// BinaryOutputs is parameters.binary_data_output; OutputBinary[i] is
	// outputs[i].parameters.binary_data when given (the binary tensor data
	// extension). See Binary.
	BinaryOutputs bool
	OutputBinary  []*bool
}

// Binary reports whether output i of the answer (the i-th requested, or of
// the default outputs when none was named) goes back as binary data: its
// own binary_data when given, else the request's binary_data_output.
func (r V2Request) Binary(i int) bool {
	if i < len(r.OutputBinary) && r.OutputBinary[i] != nil {
		return *r.OutputBinary[i]
	}
	return r.BinaryOutputs
}

// DecodeV2 parses and checks a JSON V2 body: one BYTES input whose shape
// matches its data (see CheckTextShape), string elements, and known output
// names (see the Output* constants; member outputs of later features are
// checked by the caller).
func DecodeV2(body []byte, knownOutputs []string) (V2Request, error) {
	return DecodeV2Binary(body, -1, knownOutputs)
}

// DecodeV2Binary is DecodeV2 for a body that may carry binary tensor data:
// jsonLen is its Inference-Header-Content-Length (see ParseHeaderLength),
// or -1 when the header is absent and the whole body is JSON. The input's
// texts come from its "data" or, when its parameters give binary_data_size,
// from the bytes after the JSON, which that size must account for exactly.
func DecodeV2Binary(body []byte, jsonLen int, knownOutputs []string) (V2Request, error) {
	var bin []byte
	if jsonLen >= 0 {
		if jsonLen > len(body) {
			return V2Request{}, invalid("%s %d is larger than the %d-byte body", HeaderInferenceLength, jsonLen, len(body))
		}
		body, bin = body[:jsonLen], body[jsonLen:]
	}
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
	if in.Shape == nil {
		return V2Request{}, invalid("input %q: missing shape, want [n] for n texts", name)
	}
	size, binaryIn, err := intParam(in.Parameters, ParamBinaryDataSize, "input "+strconv.Quote(name)+": parameters")
	if err != nil {
		return V2Request{}, err
	}
	var texts []string
	switch {
	case binaryIn && jsonLen < 0:
		return V2Request{}, invalid("input %q: parameters.%s needs the %s header", name, ParamBinaryDataSize, HeaderInferenceLength)
	case binaryIn && len(in.Data) > 0:
		return V2Request{}, invalid("input %q: both \"data\" and parameters.%s", name, ParamBinaryDataSize)
	case binaryIn:
		if size != int64(len(bin)) {
			return V2Request{}, invalid("input %q: parameters.%s is %d, %d bytes follow the JSON", name, ParamBinaryDataSize, size, len(bin))
		}
		if texts, err = TextsFromBytesTensor(name, in.Shape, bin); err != nil {
			return V2Request{}, err
		}
	case len(bin) > 0:
		return V2Request{}, invalid("%d bytes follow the JSON but no input has parameters.%s", len(bin), ParamBinaryDataSize)
	case len(in.Data) == 0:
		return V2Request{}, invalid(`input %q: missing "data"`, name)
	default:
		if texts, err = flattenStrings(in.Data, name); err != nil {
			return V2Request{}, err
		}
	}
	if err := CheckTextShape(name, in.Shape, len(texts)); err != nil {
		return V2Request{}, err
	}
	texts, pairs, err := SplitRows(name, in.Shape, texts)
	if err != nil {
		return V2Request{}, err
	}
	req := V2Request{ID: w.ID, Texts: texts, Pairs: pairs}
	if err := req.readParameters(w.InferRequest, knownOutputs); err != nil {
		return V2Request{}, err
	}
	return req, nil
}

// readParameters reads the request's options and the outputs it asks for.
func (req *V2Request) readParameters(w InferRequest, knownOutputs []string) error {
	var err error
	if req.Cache, err = boolParam(w.Parameters, "cache"); err != nil {
		return err
	}
	if req.TopK, err = topK(w.Parameters); err != nil {
		return err
	}
	if req.Truncate, err = boolParam(w.Parameters, "truncate"); err != nil {
		return err
	}
	if b, err := boolParam(w.Parameters, ParamBinaryDataOutput); err != nil {
		return err
	} else if b != nil {
		req.BinaryOutputs = *b
	}
	for i, o := range w.Outputs {
		if !slices.Contains(knownOutputs, o.Name) {
			return invalid("outputs[%d]: unknown output %q (known: %s)", i, o.Name, strings.Join(knownOutputs, ", "))
		}
		b, err := boolParam(o.Parameters, ParamBinaryData)
		if err != nil {
			return fmt.Errorf("outputs[%d]: %w", i, err)
		}
		req.Outputs = append(req.Outputs, o.Name)
		req.OutputBinary = append(req.OutputBinary, b)
	}
	return nil
}

// TextsFromBytesTensor reads the texts of a binary BYTES tensor: as many as
// its shape says or, when the shape leaves the count open ([] or one -1
// dimension), as many as the bytes hold.
func TextsFromBytesTensor(name string, shape []int64, b []byte) ([]string, error) {
	n, fixed, err := shapeElements(name, shape)
	if err != nil {
		return nil, err
	}
	if !fixed {
		if n, err = CountBytesTensor(b); err != nil {
			return nil, invalid("input %q: %v", name, err)
		}
	}
	texts, err := DecodeBytesTensor(b, n)
	if err != nil {
		return nil, invalid("input %q: %v", name, err)
	}
	return texts, nil
}

// CheckTextShape matches a BYTES input's shape with the n texts it carries
// (one text per row). KServe's clients send [] and [-1] for "however many";
// more generally one -1 dimension takes whatever the others leave, so
// [-1, 1] fits any n and [-1, 2] any even n. Without a -1 the shape must
// hold exactly n elements. An empty batch is refused.
func CheckTextShape(name string, shape []int64, n int) error {
	want, fixed, err := shapeElements(name, shape)
	if err != nil {
		return err
	}
	if fixed && want != int64(n) {
		return invalid("input %q: shape %v holds %d elements, data has %d", name, shape, want, n)
	}
	if !fixed && (want == 0 && n > 0 || want > 0 && int64(n)%want != 0) {
		return invalid("input %q: shape %v cannot hold %d elements", name, shape, n)
	}
	if n == 0 {
		return invalid("input %q is empty: send at least one text", name)
	}
	return nil
}

// shapeElements is the element count a shape fixes; fixed is false for []
// and for a shape with one -1, and then n is the product of the other
// dimensions.
func shapeElements(name string, shape []int64) (n int64, fixed bool, err error) {
	n, fixed = 1, len(shape) > 0
	wild := 0
	for _, d := range shape {
		switch {
		case d == -1:
			wild++
			fixed = false
			continue
		case d < 0:
			return 0, false, invalid("input %q: shape %v has a negative dimension", name, shape)
		}
		n *= d
		if n > 1<<31 {
			return 0, false, invalid("input %q: shape %v is too large", name, shape)
		}
	}
	if wild > 1 {
		return 0, false, invalid("input %q: shape %v has more than one -1 dimension", name, shape)
	}
	return n, fixed, nil
}

// intParam reads parameters[name], which must be a non-negative integer
// when present.
func intParam(params map[string]json.RawMessage, name, where string) (int64, bool, error) {
	raw, ok := params[name]
	if !ok {
		return 0, false, nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return 0, false, invalid("%s.%s is %s, want a non-negative integer", where, name, jsonKind(raw))
	}
	return n, true, nil
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
	// Data is nil when the output travels as binary data.
	Data any `json:"data,omitempty"`
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
