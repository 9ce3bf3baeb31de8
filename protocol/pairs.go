package protocol

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
)

// PairPredictor is implemented by predictors that can also score text
// pairs (NLI premise and hypothesis, a cross-encoder's query and passage).
//
// TakesPairs says whether this one does, as configured: a remote whose
// server would misread pairs (KServe's Hugging Face server scores [a, b]
// as something else, silently) says no. PredictPairs keeps Predict's contract with pairs for texts: exactly
// len(pairs) rows of len(Metadata().Labels) logits, row i for pairs[i];
// an empty batch is an empty result; over-length pairs are truncated
// (longest first, as transformers does); ctx ends it; input faults wrap
// ErrInvalidInput (a predictor that cannot take pairs after all, such as
// a remote that does not speak them, says so that way). The gateway sends
// pairs only to replicas that implement it and take pairs.
type PairPredictor interface {
	TakesPairs() bool
	PredictPairs(ctx context.Context, pairs [][2]string) (Logits, error)
}

// PairRequest is TextRequest for text pairs: one BYTES input of shape
// [n, 2], each row a text and its pair.
func PairRequest(id string, pairs [][2]string, outputs ...string) (InferRequest, error) {
	flat := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		flat = append(flat, p[0], p[1])
	}
	req, err := TextRequest(id, flat, outputs...)
	if err != nil {
		return req, err
	}
	req.Inputs[0].Shape = []int64{int64(len(pairs)), 2}
	return req, nil
}

// SplitRows reads the elements of a BYTES input (already matched with its
// shape by CheckTextShape) as rows: [n], [n, 1] and the open [] and [-1]
// (or [-1, 1]) hold one text per row; [n, 2] (or [-1, 2]) one text pair per
// row, a text and its text_pair. Any other shape is refused, so that a
// tensor meant otherwise is never scored as loose texts.
func SplitRows(name string, shape []int64, elems []string) (texts []string, pairs [][2]string, err error) {
	switch {
	case len(shape) <= 1:
		return elems, nil, nil
	case len(shape) == 2 && shape[1] == 1:
		return elems, nil, nil
	case len(shape) == 2 && shape[1] == 2 && len(elems)%2 == 0:
		pairs = make([][2]string, len(elems)/2)
		for i := range pairs {
			pairs[i] = [2]string{elems[2*i], elems[2*i+1]}
		}
		return nil, pairs, nil
	}
	return nil, nil, invalid("input %q: shape %v: want [n] or [n, 1] for n texts, or [n, 2] for n text pairs", name, shape)
}

// v1Instance reads one V1 instance: a text "a", a pair ["a", "b"], or the
// pipeline's {"text": "a", "text_pair": "b"} ({"text": "a"} alone is a
// text). isPair says which it was.
func v1Instance(r json.RawMessage, where position) (text string, pair [2]string, isPair bool, err error) {
	if s, ok := jsonString(r); ok {
		return s, pair, false, nil
	}
	r = bytes.TrimSpace(r)
	switch {
	case len(r) > 0 && r[0] == '[':
		var items []json.RawMessage
		if json.Unmarshal(r, &items) != nil || len(items) != 2 {
			return "", pair, false, invalid("%s is an array of %d, want a text pair [text, text_pair]", where, len(items))
		}
		for j, it := range items {
			s, ok := jsonString(it)
			if !ok {
				return "", pair, false, invalid("%s[%d] is %s, want a string", where, j, jsonKind(it))
			}
			pair[j] = s
		}
		return "", pair, true, nil
	case len(r) > 0 && r[0] == '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(r, &obj); err != nil {
			return "", pair, false, invalid("%s: %v", where, err)
		}
		for k := range obj {
			if k != "text" && k != "text_pair" {
				return "", pair, false, invalid("%s has key %q, want only text and text_pair", where, k)
			}
		}
		if _, has := obj["text"]; !has {
			return "", pair, false, invalid(`%s has no "text"`, where)
		}
		a, ok := jsonString(obj["text"])
		if !ok {
			return "", pair, false, invalid("%s.text is %s, want a string", where, jsonKind(obj["text"]))
		}
		raw, has := obj["text_pair"]
		if !has {
			return a, pair, false, nil
		}
		b, ok := jsonString(raw)
		if !ok {
			return "", pair, false, invalid("%s.text_pair is %s, want a string", where, jsonKind(raw))
		}
		return "", [2]string{a, b}, true, nil
	}
	return "", pair, false, invalid("%s is %s, want a string, a [text, text_pair] array or a {\"text\", \"text_pair\"} object", where, jsonKind(r))
}

// v1Instances reads every instance; texts and pairs may not be mixed in
// one request (a model answers one kind per batch).
func v1Instances(raw []json.RawMessage, field string) (texts []string, pairs [][2]string, err error) {
	firstPair := false
	for i, r := range raw {
		where := position{field, i}
		t, p, isPair, err := v1Instance(r, where)
		if err != nil {
			return nil, nil, err
		}
		if i == 0 {
			firstPair = isPair
		} else if isPair != firstPair {
			return nil, nil, invalid("%s is a %s, %s[0] a %s: send texts or text pairs, not both", where, kind(isPair), field, kind(firstPair))
		}
		if isPair {
			pairs = append(pairs, p)
		} else {
			texts = append(texts, t)
		}
	}
	return texts, pairs, nil
}

// position names an instance in errors ("instances[3]"), formatted only
// when an error needs it: every request reads every instance.
type position struct {
	field string
	i     int
}

func (p position) String() string { return fmt.Sprintf("%s[%d]", p.field, p.i) }

func kind(pair bool) string {
	if pair {
		return "text pair"
	}
	return "text"
}
