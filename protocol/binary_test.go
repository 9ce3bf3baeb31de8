package protocol

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"testing"
)

var knownV2 = []string{OutputDefault, OutputLabel, OutputProbabilities, OutputLogits}

// binaryBody builds a request the way tritonclient and the kserve SDK do:
// JSON header, then the BYTES tensor.
func binaryBody(t *testing.T, shape []int64, texts []string, extra map[string]any) ([]byte, int) {
	t.Helper()
	bin := AppendBytesTensor(nil, texts)
	req := map[string]any{"inputs": []map[string]any{{"name": "text", "shape": shape, "datatype": "BYTES",
		"parameters": map[string]any{"binary_data_size": len(bin)}}}}
	for k, v := range extra {
		req[k] = v
	}
	head, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return append(head, bin...), len(head)
}

func TestDecodeV2BinaryRoundTrip(t *testing.T) {
	texts := []string{"Hello, my dog is cute", "", "héllo \x00 wörld"}
	for _, shape := range [][]int64{{3}, {3, 1}, {}, {-1}, {-1, 1}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			body, n := binaryBody(t, shape, texts, map[string]any{"outputs": []map[string]any{
				{"name": "logits", "parameters": map[string]any{"binary_data": true}}, {"name": "label"}},
				"parameters": map[string]any{"binary_data_output": false}})
			req, err := DecodeV2Binary(body, n, knownV2)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(req.Texts, texts) {
				t.Fatalf("texts %q, want %q", req.Texts, texts)
			}
			if !req.Binary(0) || req.Binary(1) {
				t.Fatalf("binary outputs %v %v, want true false", req.Binary(0), req.Binary(1))
			}
		})
	}
}

type bodyCase struct {
	body []byte
	n    int
}

func bodyOf(b []byte, n int) bodyCase { return bodyCase{b, n} }

func TestDecodeV2BinaryRejects(t *testing.T) {
	good, n := binaryBody(t, []int64{2}, []string{"a", "bc"}, nil)
	lying := slices.Clone(good)
	binary.LittleEndian.PutUint32(lying[n:], math.MaxUint32) // first element claims 4 GiB
	jsonOnly := `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"]}]}`
	both := `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"],"parameters":{"binary_data_size":5}}]}`
	negative := `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":-1}}]}`
	badFlag := `{"inputs":[{"name":"t","shape":[1],"datatype":"BYTES","data":["a"]}],"outputs":[{"name":"label","parameters":{"binary_data":"yes"}}]}`
	for name, tc := range map[string]bodyCase{
		"element length past the end": {lying, n},
		"size without header":         {good[:n], -1},
		"header past the body":        {good, len(good) + 1},
		"size larger than the bytes":  {good[:len(good)-1], n},
		"bytes without size":          {append([]byte(jsonOnly), 1, 0, 0, 0, 'x'), len(jsonOnly)},
		"shape says more":             bodyOf(binaryBody(t, []int64{3}, []string{"a", "bc"}, nil)),
		"shape says fewer":            bodyOf(binaryBody(t, []int64{1}, []string{"a", "bc"}, nil)),
		"both data and binary":        {append([]byte(both), 1, 0, 0, 0, 'x'), len(both)},
		"negative size":               {[]byte(negative), len(negative)},
		"binary_data not a boolean":   {[]byte(badFlag), len(badFlag)},
		"header inside the JSON":      {good, n - 1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeV2Binary(tc.body, tc.n, knownV2)
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("err %v, want ErrInvalidInput", err)
			}
		})
	}
}

// A request whose shape claims 2^31 texts over a few bytes is refused before
// anything of that size is allocated.
func TestDecodeV2BinaryLyingShapeAllocatesLittle(t *testing.T) {
	body, n := binaryBody(t, []int64{1 << 31}, []string{"a"}, nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := DecodeV2Binary(body, n, knownV2)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("err %v, want ErrInvalidInput", err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
		t.Fatalf("allocated %d bytes for a %d-byte request", d, len(body))
	}
}

func TestParseHeaderLength(t *testing.T) {
	for v, want := range map[string]int{"0": 0, "10": 10, " 7 ": 7} {
		if got, err := ParseHeaderLength(v, 10); err != nil || got != want {
			t.Errorf("ParseHeaderLength(%q) = %d, %v; want %d", v, got, err, want)
		}
	}
	for _, v := range []string{"", "-1", "11", "x", "99999999999999999999"} {
		if _, err := ParseHeaderLength(v, 10); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("ParseHeaderLength(%q): err %v, want ErrInvalidInput", v, err)
		}
	}
}

func TestCheckTextShape(t *testing.T) {
	for _, tc := range []struct {
		shape []int64
		n     int
		ok    bool
	}{
		{[]int64{}, 3, true}, {[]int64{-1}, 3, true}, {[]int64{-1, 1}, 3, true}, {[]int64{3}, 3, true},
		{[]int64{3, 1}, 3, true}, {[]int64{-1, 2}, 4, true}, {[]int64{-1, 2}, 3, false}, {[]int64{2}, 3, false},
		{[]int64{-1, -1}, 3, false}, {[]int64{-2}, 3, false}, {[]int64{}, 0, false}, {[]int64{0}, 0, false},
		{[]int64{-1, 0}, 2, false},
	} {
		err := CheckTextShape("t", tc.shape, tc.n)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrInvalidInput) {
			t.Errorf("CheckTextShape(%v, %d) = %v, want ok=%v", tc.shape, tc.n, err, tc.ok)
		}
	}
}

func TestMarshalV2Binary(t *testing.T) {
	resp := InferResponse{ModelName: "m", ID: "1", Outputs: []OutputTensor{
		{Name: "label", Shape: []int{2}, Datatype: DatatypeINT64, Data: []int64{1, -2}},
		{Name: "logits", Shape: []int{2, 2}, Datatype: DatatypeFP32, Data: FP32{0.5, -1, 3, float32(math.Inf(1))}},
		{Name: "output-0", Shape: []int{2}, Datatype: DatatypeBYTES, Data: []string{"{0: 1.0}", ""},
			Parameters: map[string]any{"kept": "yes"}},
	}}
	body, n, err := MarshalV2(resp, func(i int) bool { return i != 0 })
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		Outputs []struct {
			Name       string
			Parameters map[string]any
			Data       json.RawMessage
		}
	}
	if err := json.Unmarshal(body[:n], &head); err != nil {
		t.Fatal(err)
	}
	if string(head.Outputs[0].Data) != "[1,-2]" || head.Outputs[1].Data != nil || head.Outputs[2].Parameters["kept"] != "yes" {
		t.Fatalf("header %s", body[:n])
	}
	rest := body[n:]
	size := func(i int) int { return int(head.Outputs[i].Parameters[ParamBinaryDataSize].(float64)) }
	logits, err := DecodeFP32(rest[:size(1)], 4)
	if err != nil || !slices.Equal(logits, []float32(resp.Outputs[1].Data.(FP32))) {
		t.Fatalf("logits %v, %v", logits, err)
	}
	strs, err := DecodeBytesTensor(rest[size(1):], 2)
	if err != nil || !slices.Equal(strs, []string{"{0: 1.0}", ""}) || size(1)+size(2) != len(rest) {
		t.Fatalf("strings %q, %v", strs, err)
	}
	if resp.Outputs[2].Parameters[ParamBinaryDataSize] != nil {
		t.Fatal("MarshalV2 changed the caller's parameters")
	}
	plain, n, err := MarshalV2(resp, func(int) bool { return false })
	if err != nil || n != -1 || !json.Valid(plain) {
		t.Fatalf("plain: n %d, err %v", n, err)
	}
	ints, err := DecodeINT64(AppendINT64(nil, []int64{math.MinInt64, 7}), 2)
	if err != nil || ints[0] != math.MinInt64 || ints[1] != 7 {
		t.Fatalf("INT64 round trip: %v %v", ints, err)
	}
}

func TestCheckParameters(t *testing.T) {
	if err := CheckParameters("parameters", map[string]any{"a": 1, "b": "x", "c": true, "d": 0.5}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []any{[]string{"a"}, map[string]any{}, nil, []float64{1}} {
		if err := CheckParameters("parameters", map[string]any{"k": bad}); err == nil {
			t.Errorf("%#v accepted as a scalar", bad)
		}
	}
}
