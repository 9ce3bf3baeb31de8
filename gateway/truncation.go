package gateway

import (
	"context"
	"strconv"
	"strings"

	"github.com/chorusml/chorus/protocol"
)

// refuseTruncation marks ctx when the request sets parameters.truncate
// false: a backend then refuses an over-length input with ErrTooLarge
// (413) naming its index, instead of cutting it.
func refuseTruncation(ctx context.Context, truncate *bool) context.Context {
	if truncate != nil && !*truncate {
		return protocol.WithTruncation(ctx, &protocol.Truncation{Refuse: true})
	}
	return ctx
}

// truncated counts the inputs of an answer the model cut, into the
// chorus_truncated_texts_total metric, and returns the count: the
// response's "truncated" parameter when it is not 0.
func (s *Server) truncated(model string, p prediction) int {
	n := len(p.cache.truncated)
	if n > 0 && s.metrics != nil {
		s.metrics.truncated.WithLabelValues(model).Add(float64(n))
	}
	return n
}

// truncationParameters set the response's "truncated" (how many inputs
// were cut) and "truncated_inputs" (which: their indices comma-joined, an
// OIP scalar; what a gateway in front of this one reads) when some were.
func (s *Server) truncationParameters(params map[string]any, model string, p prediction) map[string]any {
	n := s.truncated(model, p)
	if n == 0 {
		return params
	}
	if params == nil {
		params = map[string]any{}
	}
	idx := make([]string, n)
	for i, j := range p.cache.truncated {
		idx[i] = strconv.Itoa(j)
	}
	params["truncated"] = n
	params["truncated_inputs"] = strings.Join(idx, ",")
	return params
}
