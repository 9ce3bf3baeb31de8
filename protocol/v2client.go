package protocol

import (
	"encoding/json"
	"fmt"
)

// The client side of V2: what a gateway sends to a remote predictor, and
// how it reads the answer. One implementation for the kserve backend,
// `chorus calibrate --url` and the tests.

// TextRequest is the V2 request that scores texts, asking for outputs
// (none: the server's default output-0).
func TextRequest(id string, texts []string, outputs ...string) (InferRequest, error) {
	data, err := json.Marshal(texts)
	if err != nil {
		return InferRequest{}, fmt.Errorf("encode texts: %w", err)
	}
	req := InferRequest{ID: id, Inputs: []RequestInput{{Name: "input-0", Shape: []int64{int64(len(texts))}, Datatype: DatatypeBYTES, Data: data}}}
	for _, o := range outputs {
		req.Outputs = append(req.Outputs, RequestOutput{Name: o})
	}
	return req, nil
}

// ClientResponse is a V2 response as a client reads it: outputs keep their
// data raw until asked for as a type.
type ClientResponse struct {
	ModelName  string                     `json:"model_name"`
	ID         string                     `json:"id"`
	Parameters map[string]json.RawMessage `json:"parameters"`
	Outputs    []ClientOutput             `json:"outputs"`
	// Error is set on error answers ({"error": "..."}).
	Error string `json:"error"`
}

// ClientOutput is one output tensor of a ClientResponse.
type ClientOutput struct {
	Name       string                     `json:"name"`
	Shape      []int                      `json:"shape"`
	Datatype   string                     `json:"datatype"`
	Parameters map[string]json.RawMessage `json:"parameters"`
	Data       json.RawMessage            `json:"data"`
}

// DecodeResponse reads a V2 response body.
func DecodeResponse(data []byte) (ClientResponse, error) {
	var r ClientResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return ClientResponse{}, fmt.Errorf("V2 response is not JSON: %w", err)
	}
	return r, nil
}

// Output finds an output by name.
func (r ClientResponse) Output(name string) (ClientOutput, error) {
	for _, o := range r.Outputs {
		if o.Name == name {
			return o, nil
		}
	}
	return ClientOutput{}, fmt.Errorf("response has no output %q", name)
}

// Strings reads a BYTES output.
func (o ClientOutput) Strings() ([]string, error) {
	var s []string
	if o.Datatype != DatatypeBYTES || json.Unmarshal(o.Data, &s) != nil {
		return nil, fmt.Errorf("output %q is %s, want BYTES strings", o.Name, o.Datatype)
	}
	return s, nil
}

// Rows reads an FP32 output of shape [n, k] as n rows.
func (o ClientOutput) Rows() (Logits, error) {
	var flat []float32
	if o.Datatype != DatatypeFP32 || len(o.Shape) != 2 || json.Unmarshal(o.Data, &flat) != nil {
		return nil, fmt.Errorf("output %q is %s %v, want FP32 [n, k]", o.Name, o.Datatype, o.Shape)
	}
	n, k := o.Shape[0], o.Shape[1]
	if n < 0 || k <= 0 || n*k != len(flat) {
		return nil, fmt.Errorf("output %q has shape %v but %d values", o.Name, o.Shape, len(flat))
	}
	out := make(Logits, n)
	for i := range out {
		out[i] = flat[i*k : (i+1)*k : (i+1)*k]
	}
	return out, nil
}
