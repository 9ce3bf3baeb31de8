package protocol

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
)

// The binary tensor data extension (Triton's, which KServe's server and SDK
// implement too): a V2 HTTP body may be a JSON header followed by raw tensor
// bytes. The header's length travels in Inference-Header-Content-Length; an
// input whose parameters carry binary_data_size takes that many bytes of
// what follows the JSON, in input order. Elements are little-endian, row
// major, unpadded; a BYTES element is a 4-byte little-endian length, then
// the bytes.
const (
	// HeaderInferenceLength is the HTTP header that gives the JSON length.
	HeaderInferenceLength = "Inference-Header-Content-Length"
	// ParamBinaryDataSize (input or output parameter): bytes of binary data.
	ParamBinaryDataSize = "binary_data_size"
	// ParamBinaryData (requested-output parameter): answer this output as
	// binary data.
	ParamBinaryData = "binary_data"
	// ParamBinaryDataOutput (request parameter): answer every output as
	// binary data unless the output says otherwise.
	ParamBinaryDataOutput = "binary_data_output"
	// ExtensionBinaryData is the name servers list in their metadata.
	ExtensionBinaryData = "binary_tensor_data"
)

// ParseHeaderLength reads an Inference-Header-Content-Length value against
// the body it describes: it must be a decimal number no larger than the body.
func ParseHeaderLength(value string, bodyLen int) (int, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("%s %q is not a non-negative integer", HeaderInferenceLength, value)
	}
	if n > int64(bodyLen) {
		return 0, invalid("%s %d is larger than the %d-byte body", HeaderInferenceLength, n, bodyLen)
	}
	return int(n), nil
}

// DecodeBytesTensor reads n BYTES elements from b, which must hold exactly
// them. Every length is checked against what is left before anything is
// sliced, and n against the least room n elements need, so a lying size
// can neither read past b nor make a large allocation.
func DecodeBytesTensor(b []byte, n int64) ([]string, error) {
	if n < 0 || n > int64(len(b))/4 {
		return nil, invalid("binary BYTES tensor: %d elements cannot fit in %d bytes", n, len(b))
	}
	out := make([]string, 0, n)
	for i := int64(0); i < n; i++ {
		if len(b) < 4 {
			return nil, invalid("binary BYTES tensor: element %d: %d bytes left, want a 4-byte length", i, len(b))
		}
		size := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if uint64(size) > uint64(len(b)) {
			return nil, invalid("binary BYTES tensor: element %d claims %d bytes, %d are left", i, size, len(b))
		}
		out = append(out, string(b[:size]))
		b = b[size:]
	}
	if len(b) != 0 {
		return nil, invalid("binary BYTES tensor: %d bytes left over after %d elements", len(b), n)
	}
	return out, nil
}

// CountBytesTensor counts the BYTES elements b holds (for a tensor whose
// shape does not say, as [-1] or []), with the same checks as
// DecodeBytesTensor.
func CountBytesTensor(b []byte) (int64, error) {
	var n int64
	for len(b) > 0 {
		if len(b) < 4 {
			return 0, invalid("binary BYTES tensor: element %d: %d bytes left, want a 4-byte length", n, len(b))
		}
		size := binary.LittleEndian.Uint32(b)
		b = b[4:]
		if uint64(size) > uint64(len(b)) {
			return 0, invalid("binary BYTES tensor: element %d claims %d bytes, %d are left", n, size, len(b))
		}
		b = b[size:]
		n++
	}
	return n, nil
}

// AppendBytesTensor appends texts as a binary BYTES tensor.
func AppendBytesTensor(b []byte, texts []string) []byte {
	for _, t := range texts {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t)))
		b = append(b, t...)
	}
	return b
}

// AppendFP32 appends values as little-endian IEEE 754 singles.
func AppendFP32(b []byte, v []float32) []byte {
	for _, f := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

// AppendINT64 appends values as little-endian two's complement.
func AppendINT64(b []byte, v []int64) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, uint64(x))
	}
	return b
}

// DecodeFP32 reads a raw FP32 tensor of n elements; b must hold exactly them.
func DecodeFP32(b []byte, n int64) ([]float32, error) {
	if n < 0 || int64(len(b)) != 4*n {
		return nil, invalid("binary FP32 tensor: %d bytes for %d elements, want %d", len(b), n, 4*n)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out, nil
}

// DecodeINT64 reads a raw INT64 tensor of n elements; b must hold exactly them.
func DecodeINT64(b []byte, n int64) ([]int64, error) {
	if n < 0 || int64(len(b)) != 8*n {
		return nil, invalid("binary INT64 tensor: %d bytes for %d elements, want %d", len(b), n, 8*n)
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return out, nil
}

// AppendTensor appends an output's data (what the gateway renders: []string
// for BYTES, []int64 for INT64, FP32 or []float32 for FP32) in binary form.
func AppendTensor(b []byte, data any) ([]byte, bool) {
	switch d := data.(type) {
	case []string:
		return AppendBytesTensor(b, d), true
	case []int64:
		return AppendINT64(b, d), true
	case FP32:
		return AppendFP32(b, d), true
	case []float32:
		return AppendFP32(b, d), true
	}
	return b, false
}

// MarshalV2 writes resp as JSON, except that every output i for which
// binary(i) is true travels as binary data after the JSON (its parameters
// then give binary_data_size and it has no "data"). jsonLen is the length
// of the JSON, for the Inference-Header-Content-Length header, or -1 when
// no output went binary and the body is plain JSON.
func MarshalV2(resp InferResponse, binary func(i int) bool) (body []byte, jsonLen int, err error) {
	var bin []byte
	anyBinary := false
	outs := make([]OutputTensor, len(resp.Outputs))
	for i, o := range resp.Outputs {
		if binary != nil && binary(i) {
			anyBinary = true
			start := len(bin)
			var ok bool
			if bin, ok = AppendTensor(bin, o.Data); !ok {
				return nil, 0, fmt.Errorf("output %q: %T has no binary form", o.Name, o.Data)
			}
			params := make(map[string]any, len(o.Parameters)+1)
			maps.Copy(params, o.Parameters)
			params[ParamBinaryDataSize] = len(bin) - start
			o.Parameters, o.Data = params, nil
		}
		outs[i] = o
	}
	resp.Outputs = outs
	body, err = json.Marshal(resp)
	if err != nil {
		return nil, 0, fmt.Errorf("marshal response: %w", err)
	}
	if !anyBinary {
		return body, -1, nil
	}
	jsonLen = len(body)
	return append(body, bin...), jsonLen, nil
}
