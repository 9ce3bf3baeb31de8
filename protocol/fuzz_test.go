package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"testing"
)

// The decoders take any bytes: they answer a request or an ErrInvalidInput,
// never panic, and what they accept keeps their promises.
func FuzzDecodeV1(f *testing.F) {
	for _, s := range []string{`{"instances": ["Hello, my dog is cute", "I am feeling sad"]}`, `{"inputs": ["x"]}`,
		`{"instances": ["a"], "parameters": {"output": "logits", "cache": false, "explain": true}}`, `{"instances": [1]}`, `[]`, ``,
		`{"instances": [{"text": "a", "text_pair": "b"}, ["c", "d"]], "parameters": {"output": "scores", "top_k": 1, "truncate": false}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeV1(body)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error %v does not wrap ErrInvalidInput", err)
			}
			return
		}
		if len(req.Instances)+len(req.Pairs) == 0 || req.Instances != nil && req.Pairs != nil {
			t.Fatalf("accepted %d texts and %d pairs: want a non-empty batch of one kind", len(req.Instances), len(req.Pairs))
		}
	})
}

// The one-pass decoder of all-text bodies reads whatever it accepts as the
// general one does.
func FuzzV1TextsAgree(f *testing.F) {
	for _, s := range []string{`{"instances": ["a", "b"]}`, `{"inputs": ["x"], "parameters": {"cache": false}}`, `{"instances": ["a", null]}`,
		`{"instances": [], "inputs": ["a"]}`, `{"instances": null, "inputs": ["a"]}`, `{"INSTANCES": ["a"]}`, `{"instances": ["\ud800"]}`,
		`{"instances": ["a"], "instances": [["b", "c"]]}`, `{"instances": [""]}`, `{"instances": ["a"], "INSTANCES": ["b"]}`,
		`{"in_stances": ["a"]}`, `{"in-puts": ["a"]}`, "{\"in\u017ftances\": [\"a\"]}", `{"instances": ["a"], "parameters": {"cache": false, "CACHE": true}}`,
		`{"instances": ["a\u00e9\n"], "parameters": {"output" : "probabilities" }}`, "{\"instances\": [\"\xff\"]}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		texts, params, ok := v1Texts(body)
		if !ok {
			return
		}
		want, pairs, wantParams, err := v1Inputs(body)
		if err != nil || pairs != nil || !slices.Equal(texts, want) || !maps.EqualFunc(params, wantParams, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("one pass: %q %s; general: %q %v %s (%v)", texts, params, want, pairs, wantParams, err)
		}
	})
}

func FuzzDecodeV2(f *testing.F) {
	for _, s := range []string{`{"inputs": [{"name": "input-0", "shape": [2], "datatype": "BYTES", "data": ["Hello, my dog is cute", "I am feeling sad"]}]}`,
		`{"id": "x", "inputs": [{"name": "t", "shape": [2, 1], "datatype": "BYTES", "data": [["a"], ["b"]]}], "outputs": [{"name": "logits"}]}`,
		`{"inputs": [{"shape": [-1], "datatype": "BYTES", "data": []}]}`, `{"inputs": [{"shape": [1e30], "datatype": "BYTES", "data": ["a"]}]}`,
		`{"inputs": [{"name": "p", "shape": [2, 2], "datatype": "BYTES", "data": ["a", "b", "c", "d"]}], "parameters": {"top_k": 2}}`} {
		f.Add([]byte(s))
	}
	known := []string{OutputDefault, OutputLabel, OutputProbabilities, OutputLogits}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeV2(body, known)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error %v does not wrap ErrInvalidInput", err)
			}
			return
		}
		if len(req.Texts)+len(req.Pairs) == 0 || req.Texts != nil && req.Pairs != nil {
			t.Fatalf("accepted %d texts and %d pairs: want a non-empty batch of one kind", len(req.Texts), len(req.Pairs))
		}
		for _, o := range req.Outputs {
			found := false
			for _, k := range known {
				found = found || o == k
			}
			if !found {
				t.Fatalf("accepted unknown output %q", o)
			}
		}
	})
}

// The binary decoder takes any body and any header length: an answer or an
// ErrInvalidInput, never a panic, and never more texts than bytes allow.
func FuzzDecodeV2Binary(f *testing.F) {
	bin := AppendBytesTensor(nil, []string{"Hello, my dog is cute", "I am feeling sad"})
	head := `{"inputs":[{"name":"input-0","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":` + strconv.Itoa(len(bin)) + `}}],"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}`
	f.Add(append([]byte(head), bin...), len(head))
	head = `{"inputs":[{"name":"t","shape":[-1],"datatype":"BYTES","parameters":{"binary_data_size":9}}],"parameters":{"binary_data_output":true}}`
	f.Add(append([]byte(head), 255, 255, 255, 255, 'a', 'b', 'c', 'd', 'e'), len(head))
	f.Add([]byte(`{"inputs":[{"shape":[],"datatype":"BYTES","data":["a"]}]}`), -1)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		req, err := DecodeV2Binary(body, n, knownV2)
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("error %v does not wrap ErrInvalidInput", err)
			}
			return
		}
		if n := len(req.Texts) + 2*len(req.Pairs); n == 0 || n > len(body) {
			t.Fatalf("accepted %d texts and %d pairs from %d bytes", len(req.Texts), len(req.Pairs), len(body))
		}
	})
}

// The one pass takes the common bodies (else the fuzz test above would
// pass with nothing to compare), parameters kept verbatim.
func TestV1TextsOnePass(t *testing.T) {
	for _, c := range []struct {
		body   string
		texts  []string
		output string // parameters.output as sent, "" for none
	}{
		{`{"instances": ["Hello, my dog is cute", "I am feeling sad"]}`, []string{"Hello, my dog is cute", "I am feeling sad"}, ""},
		{`{"Inputs": ["caf\u00e9"], "parameters": {"output": "probabilities"}}`, []string{"café"}, `"probabilities"`},
	} {
		texts, params, ok := v1Texts([]byte(c.body))
		if !ok || !slices.Equal(texts, c.texts) || string(params["output"]) != c.output {
			t.Errorf("%s: %q %s %v, want %q and output %s in one pass", c.body, texts, params, ok, c.texts, c.output)
		}
	}
}
