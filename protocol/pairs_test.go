package protocol

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeV1Pairs(t *testing.T) {
	for body, want := range map[string]string{
		`{"instances": [{"text": "a", "text_pair": "b"}, {"text": "c", "text_pair": ""}]}`: "[[a b] [c ]]",
		`{"instances": [["a", "b"], ["c", "d"]]}`:                                          "[[a b] [c d]]",
		`{"inputs": [["a", "b"]]}`:                                                         "[[a b]]",
	} {
		req, err := DecodeV1([]byte(body))
		if err != nil || req.Instances != nil || fmt.Sprint(req.Pairs) != want {
			t.Errorf("%s: pairs %q texts %q err %v, want %s", body, req.Pairs, req.Instances, err, want)
		}
	}
	// {"text": a} alone is a text.
	req, err := DecodeV1([]byte(`{"instances": [{"text": "a"}, "b"]}`))
	if err != nil || fmt.Sprint(req.Instances) != "[a b]" || req.Pairs != nil {
		t.Errorf("text objects: %q %q %v", req.Instances, req.Pairs, err)
	}
	for body, msg := range map[string]string{
		`{"instances": ["a", ["b", "c"]]}`:                    "instances[1] is a text pair, instances[0] a text",
		`{"instances": [["b", "c"], "a"]}`:                    "instances[1] is a text, instances[0] a text pair",
		`{"instances": [["a", "b", "c"]]}`:                    "instances[0] is an array of 3",
		`{"instances": [["a", 1]]}`:                           "instances[0][1] is a number",
		`{"instances": [{"text": "a", "pair": "b"}]}`:         `instances[0] has key "pair"`,
		`{"instances": [{"text_pair": "b"}]}`:                 `instances[0] has no "text"`,
		`{"instances": [{"text": "a", "text_pair": null}]}`:   "instances[0].text_pair is null",
		`{"instances": [7]}`:                                  "instances[0] is a number",
		`{"instances": ["a"], "parameters": {"top_k": 0}}`:    "parameters.top_k is 0",
		`{"instances": ["a"], "parameters": {"top_k": "2"}}`:  "parameters.top_k is a string",
		`{"instances": ["a"], "parameters": {"truncate": 1}}`: "parameters.truncate is a number",
		`{"instances": ["a"], "parameters": {"output": "x"}}`: "labels, scores",
	} {
		_, err := DecodeV1([]byte(body))
		if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want ErrInvalidInput saying %q", body, err, msg)
		}
	}
}

func TestDecodeV2Pairs(t *testing.T) {
	v2 := func(shape, data string) string {
		return fmt.Sprintf(`{"inputs": [{"name": "in", "shape": %s, "datatype": "BYTES", "data": %s}]}`, shape, data)
	}
	for body, want := range map[string]string{
		v2("[2, 2]", `["a", "b", "c", "d"]`):     "[[a b] [c d]]",
		v2("[2, 2]", `[["a", "b"], ["c", "d"]]`): "[[a b] [c d]]",
		v2("[-1, 2]", `["a", "b"]`):              "[[a b]]",
	} {
		req, err := DecodeV2([]byte(body), nil)
		if err != nil || req.Texts != nil || fmt.Sprint(req.Pairs) != want {
			t.Errorf("%s: pairs %q texts %q err %v, want %s", body, req.Pairs, req.Texts, err, want)
		}
	}
	for body, want := range map[string]string{
		v2("[2]", `["a", "b"]`):       "[a b]",
		v2("[2, 1]", `["a", "b"]`):    "[a b]",
		v2("[-1, 1]", `["a", "b"]`):   "[a b]",
		v2("[]", `["a", "b"]`):        "[a b]",
		v2("[-1]", `["a", "b", "c"]`): "[a b c]",
	} {
		req, err := DecodeV2([]byte(body), nil)
		if err != nil || req.Pairs != nil || fmt.Sprint(req.Texts) != want {
			t.Errorf("%s: texts %q pairs %q err %v, want %s", body, req.Texts, req.Pairs, err, want)
		}
	}
	for _, body := range []string{
		v2("[1, 3]", `["a", "b", "c"]`),
		v2("[2, -1]", `["a", "b", "c", "d"]`),
		v2("[1, 2, 1]", `["a", "b"]`),
		v2("[-1, 2]", `["a", "b", "c"]`),
		v2("[1, 1, 1]", `["a"]`),
	} {
		_, err := DecodeV2([]byte(body), nil)
		if !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: %v, want ErrInvalidInput", body, err)
		}
	}
}

func TestPairRequest(t *testing.T) {
	req, err := PairRequest("id", [][2]string{{"a", "b"}, {"c", "d"}}, OutputLogits)
	if err != nil || fmt.Sprint(req.Inputs[0].Shape) != "[2 2]" || string(req.Inputs[0].Data) != `["a","b","c","d"]` {
		t.Fatalf("%+v %v", req, err)
	}
}
