package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/chorusml/chorus/protocol"
)

// errUnknownAnswer: feedback named a request id the gateway does not hold.
var errUnknownAnswer = errors.New("unknown request id")

// feedbackRequest is the body of POST /v2/models/{name}/feedback: true
// labels of texts the model answered, each named by the request id of the
// answer (and the text's index in it) or by the text itself.
type feedbackRequest struct {
	Feedback []feedbackItem `json:"feedback"`
}

type feedbackItem struct {
	ID    *string         `json:"id"`
	Index *int            `json:"index"`
	Text  *string         `json:"text"`
	Label json.RawMessage `json:"label"`
}

// feedbackResponse says what was taken, and the model's rolling metrics
// afterwards (absent while the window is empty).
type feedbackResponse struct {
	Model string `json:"model"`
	// Accepted labels were added to the window; Duplicates named a text
	// that already had a label (a retried request), and were skipped.
	Accepted   int      `json:"accepted"`
	Duplicates int      `json:"duplicates"`
	Window     *rolling `json:"window,omitempty"`
}

// v2Feedback takes true labels for a model's answers. The whole batch is
// checked before any of it is taken: a bad item rejects the request.
func (s *Server) v2Feedback(c *gin.Context) {
	m, v, err := s.model(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	body, err := s.readBody(c)
	var req feedbackRequest
	if err == nil {
		req, err = decodeFeedback(body, s.limits.MaxInstances)
	}
	if err != nil {
		s.abort(c, err)
		return
	}
	labels := m.Metadata().Labels
	ys := make([]int, len(req.Feedback))
	var texts []string
	for i, it := range req.Feedback {
		if ys[i], err = feedbackLabel(it.Label, labels); err != nil {
			s.abort(c, fmt.Errorf("%w: feedback[%d].label: %w", protocol.ErrInvalidInput, i, err))
			return
		}
		if it.Text != nil {
			texts = append(texts, *it.Text)
		}
	}
	if err := s.checkTexts(texts); err != nil {
		s.abort(c, err)
		return
	}
	// Texts are scored as an answer would be, through the cache.
	var scored [][]float32
	if len(texts) > 0 {
		p, err := s.scorer.Predict(s.requestContext(c), m, v, texts, wantCache(c, nil))
		if err != nil {
			s.abort(c, err)
			return
		}
		r := newRender(m, nil)
		for _, row := range p.logits {
			scored = append(scored, r.calibrated(row))
		}
	}
	taken, dup, err := s.monitor.take(m.Name(), req.Feedback, ys, scored)
	if err != nil {
		s.abort(c, err)
		return
	}
	s.monitor.learn(m.Name(), taken)
	resp := feedbackResponse{Model: m.Name(), Accepted: len(taken), Duplicates: dup}
	if r, ok := s.monitor.rolling(m.Name()); ok {
		resp.Window = &r
	}
	c.JSON(http.StatusOK, resp)
}

// decodeFeedback reads a feedback body strictly: unknown fields, trailing
// data, an empty or oversized batch, and items naming neither or both of
// an id and a text are refused.
func decodeFeedback(body []byte, maxItems int) (feedbackRequest, error) {
	var req feedbackRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("%w: feedback body: %w", protocol.ErrInvalidInput, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return req, fmt.Errorf("%w: feedback body: data after the JSON object", protocol.ErrInvalidInput)
	}
	switch n := len(req.Feedback); {
	case n == 0:
		return req, fmt.Errorf("%w: feedback: at least one item is required", protocol.ErrInvalidInput)
	case n > maxItems:
		return req, fmt.Errorf("%w: %d feedback items in one request, the limit is %d", protocol.ErrTooLarge, n, maxItems)
	}
	for i, it := range req.Feedback {
		switch {
		case (it.ID == nil) == (it.Text == nil):
			return req, fmt.Errorf("%w: feedback[%d]: give either an id or a text", protocol.ErrInvalidInput, i)
		case it.ID != nil && *it.ID == "":
			return req, fmt.Errorf("%w: feedback[%d].id: empty", protocol.ErrInvalidInput, i)
		case it.Index != nil && it.Text != nil:
			return req, fmt.Errorf("%w: feedback[%d].index: goes with an id, not a text", protocol.ErrInvalidInput, i)
		case it.Index != nil && *it.Index < 0:
			return req, fmt.Errorf("%w: feedback[%d].index: %d is negative", protocol.ErrInvalidInput, i, *it.Index)
		case len(it.Label) == 0 || string(it.Label) == "null":
			return req, fmt.Errorf("%w: feedback[%d].label: required", protocol.ErrInvalidInput, i)
		}
	}
	return req, nil
}

// feedbackLabel reads a label given as an index or as one of labels'
// names. The index is checked against the answer's width later.
func feedbackLabel(raw json.RawMessage, labels []string) (int, error) {
	var i int
	if err := json.Unmarshal(raw, &i); err == nil {
		if i < 0 {
			return 0, fmt.Errorf("%d is negative", i)
		}
		return i, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err != nil {
		return 0, fmt.Errorf("%s: want a label index or name", raw)
	}
	if j := slices.Index(labels, name); j >= 0 {
		return j, nil
	}
	return 0, fmt.Errorf("%q is not one of the model's labels %q", name, labels)
}

// take resolves every item of a feedback batch to the calibrated logits it
// was answered with (by id) or scored with (scored, the texts in order),
// checks every label against its width, and marks the answers labelled:
// all or nothing. Items for texts already labelled are counted, not taken.
func (m *monitor) take(model string, items []feedbackItem, ys []int, scored [][]float32) ([]labelled, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	type mark struct {
		a *answer
		i int
	}
	var marks []mark
	out := make([]labelled, 0, len(items))
	dup, t := 0, 0
	for i, it := range items {
		if it.Text != nil {
			row := scored[t]
			t++
			if err := checkLabel(i, ys[i], row); err != nil {
				return nil, 0, err
			}
			out = append(out, labelled{row: row, label: ys[i]})
			continue
		}
		a := m.answers.find(answerKey{model, *it.ID})
		if a == nil {
			return nil, 0, fmt.Errorf("%w: feedback[%d].id: %q is not a recent answer of model %q (unknown, or forgotten: the gateway remembers the last %d texts answered)",
				errUnknownAnswer, i, *it.ID, model, m.opts.Remember)
		}
		at := 0
		if it.Index != nil {
			at = *it.Index
		}
		if at >= len(a.rows) {
			return nil, 0, fmt.Errorf("%w: feedback[%d].index: %d is out of range: request %q answered %d texts", protocol.ErrInvalidInput, i, at, *it.ID, len(a.rows))
		}
		if err := checkLabel(i, ys[i], a.rows[at]); err != nil {
			return nil, 0, err
		}
		if a.labelled != nil && a.labelled[at] || slices.Contains(marks, mark{a, at}) {
			dup++
			continue
		}
		marks = append(marks, mark{a, at})
		out = append(out, labelled{row: a.rows[at], label: ys[i]})
	}
	for _, mk := range marks {
		if mk.a.labelled == nil {
			mk.a.labelled = make([]bool, len(mk.a.rows))
		}
		mk.a.labelled[mk.i] = true
	}
	return out, dup, nil
}

func checkLabel(i, y int, row []float32) error {
	if y >= len(row) {
		return fmt.Errorf("%w: feedback[%d].label: %d is out of range: the model has %d labels", protocol.ErrInvalidInput, i, y, len(row))
	}
	return nil
}
