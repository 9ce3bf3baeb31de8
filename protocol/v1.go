package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Output names a request may ask for, on V1 (parameters.output) and V2
// (outputs[].name), beyond KServe's default output-0.
const (
	OutputDefault       = "output-0"
	OutputLabel         = "label"
	OutputProbabilities = "probabilities"
	OutputLogits        = "logits"
	// OutputCalibratedLogits are the logits divided by the model's temperature.
	OutputCalibratedLogits = "calibrated_logits"
	// OutputMemberLogits (V2, ensembles) are each member's logits.
	OutputMemberLogits = "member_logits"
	// OutputLabels are, per text, the names of every label whose score is
	// at or above the model's threshold (multi-label answers).
	OutputLabels = "labels"
	// OutputScores are, per text, {"label", "score"} pairs sorted high to
	// low, as transformers' text-classification pipeline answers
	// (top_k of them when the request sets it).
	OutputScores = "scores"
)

// V1Request is a decoded KServe V1 predict request.
type V1Request struct {
	// Instances are the texts; Pairs the text pairs when the request sends
	// pairs instead (one or the other is set).
	Instances []string
	Pairs     [][2]string
	// Output is "" (the model's default) or one of label, probabilities, logits.
	Output string
	// Cache is parameters.cache: false opts out of the logits cache.
	Cache *bool
	// Explain is parameters.explain: true asks an ensemble for its members' logits.
	Explain bool
	// TopK is parameters.top_k: how many named scores per text (0: all).
	TopK int
	// Truncate is parameters.truncate: false refuses an over-length text
	// (413) instead of cutting it.
	Truncate *bool
}

type v1Wire struct {
	Instances  *[]json.RawMessage         `json:"instances"`
	Inputs     *[]json.RawMessage         `json:"inputs"` // KServe accepts this spelling too
	Parameters map[string]json.RawMessage `json:"parameters"`
}

// DecodeV1 parses and checks a V1 body: {"instances": ["text", ...]}, or
// text pairs as [["text", "text_pair"], ...] or the pipeline's
// [{"text": ..., "text_pair": ...}, ...]. Errors
// wrap ErrInvalidInput and say what is wrong where.
func DecodeV1(body []byte) (V1Request, error) {
	texts, params, ok := v1Texts(body)
	var pairs [][2]string
	var err error
	if !ok {
		if texts, pairs, params, err = v1Inputs(body); err != nil {
			return V1Request{}, err
		}
	}
	req := V1Request{Instances: texts, Pairs: pairs}
	if p, ok := params["output"]; ok {
		out, ok := jsonString(p)
		if !ok {
			return V1Request{}, invalid(`parameters.output is %s, want a string`, jsonKind(p))
		}
		req.Output = out
		switch req.Output {
		case OutputLabel, OutputProbabilities, OutputLogits, OutputCalibratedLogits, OutputLabels, OutputScores:
		default:
			return V1Request{}, invalid("parameters.output %q is not one of %s", req.Output,
				strings.Join([]string{OutputLabel, OutputProbabilities, OutputLogits, OutputCalibratedLogits, OutputLabels, OutputScores}, ", "))
		}
	}
	if req.TopK, err = topK(params); err != nil {
		return V1Request{}, err
	}
	if req.Truncate, err = boolParam(params, "truncate"); err != nil {
		return V1Request{}, err
	}
	if req.Cache, err = boolParam(params, "cache"); err != nil {
		return V1Request{}, err
	}
	explain, err := boolParam(params, "explain")
	if err != nil {
		return V1Request{}, err
	}
	req.Explain = explain != nil && *explain
	return req, nil
}

// v1TextsWire is the common body, every instance a text, which one pass
// reads; any other (pairs, nulls, errors) is read by v1Wire, instance by
// instance.
type v1TextsWire struct {
	Instances  []string                  `json:"instances"`
	Inputs     []string                  `json:"inputs"` // KServe accepts this spelling too
	Parameters map[string]jsontext.Value `json:"parameters"`
}

// v1TextsOptions match names as encoding/json does (any case, as
// strings.EqualFold), so that what the one pass reads the general path
// reads the same; what it refuses and encoding/json takes (a repeated name,
// invalid UTF-8) goes to the general path. It is the JSON v2 decoder: a
// third of encoding/json's time and a quarter of its allocations here.
var v1TextsOptions = jsonv2.JoinOptions(jsonv2.MatchCaseInsensitiveNames(true), jsonv1.MatchCaseSensitiveDelimiter(true))

// v1Texts reads body in one pass if every instance is a non-empty text. A
// null decodes as "" here, so an empty text takes the general path, which
// tells the two apart.
func v1Texts(body []byte) (texts []string, params map[string]json.RawMessage, ok bool) {
	var w v1TextsWire
	if jsonv2.Unmarshal(body, &w, v1TextsOptions) != nil {
		return nil, nil, false
	}
	texts = w.Instances
	if texts == nil {
		texts = w.Inputs
	}
	if len(texts) == 0 || slices.Contains(texts, "") {
		return nil, nil, false
	}
	if w.Parameters != nil {
		params = make(map[string]json.RawMessage, len(w.Parameters))
		for k, v := range w.Parameters {
			params[k] = json.RawMessage(v)
		}
	}
	return texts, params, true
}

// v1Inputs reads any V1 body, instance by instance, and says what is wrong
// where.
func v1Inputs(body []byte) (texts []string, pairs [][2]string, params map[string]json.RawMessage, err error) {
	var w v1Wire
	if err := decodeJSON(body, &w); err != nil {
		return nil, nil, nil, err
	}
	raw := w.Instances
	field := "instances"
	if raw == nil {
		raw, field = w.Inputs, "inputs"
	}
	if raw == nil {
		return nil, nil, nil, invalid(`missing "instances": want {"instances": ["text", ...]}`)
	}
	if len(*raw) == 0 {
		return nil, nil, nil, invalid(`"%s" is empty: send at least one text`, field)
	}
	texts, pairs, err = v1Instances(*raw, field)
	return texts, pairs, w.Parameters, err
}

// V1Response is KServe's V1 predict answer. Parameters and Members appear
// only for ensembles (which members answered; their logits when explained).
type V1Response struct {
	Predictions any            `json:"predictions"`
	Parameters  map[string]any `json:"parameters,omitempty"`
	Members     any            `json:"members,omitempty"`
}

func decodeJSON(body []byte, v any) error {
	if len(body) == 0 {
		return invalid("empty request body: want a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return invalid("malformed JSON: %v", err)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidInput, fmt.Sprintf(format, args...))
}

// boolParam reads parameters[name], which must be a boolean when present.
func boolParam(params map[string]json.RawMessage, name string) (*bool, error) {
	raw, ok := params[name]
	if !ok {
		return nil, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, invalid("parameters.%s is %s, want true or false", name, jsonKind(raw))
	}
	return &b, nil
}

// jsonString decodes r if it is a JSON string. (json.Unmarshal would accept
// null as "" without error.)
func jsonString(r json.RawMessage) (string, bool) {
	r = bytes.TrimSpace(r)
	if len(r) == 0 || r[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", false
	}
	return s, true
}

// jsonKind names the JSON type of r for error messages.
func jsonKind(r json.RawMessage) string {
	var v any
	if json.Unmarshal(r, &v) != nil {
		return "invalid"
	}
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	default:
		return "an object"
	}
}
