package gateway

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/chorusml/chorus/protocol"
)

// inferV2 answers a decoded V2 request on model m, version v: predict
// (through the cache and, for an ensemble, its members), then render the
// outputs asked for. The HTTP V2 handler and gRPC ModelInfer both use it,
// so the two transports cannot drift apart; each decodes and encodes its
// own wire form around it.
func (s *Server) inferV2(ctx context.Context, m Servable, v *Version, req protocol.V2Request, useCache bool) (protocol.InferResponse, cacheResult, error) {
	if !isEnsemble(m) && slices.Contains(req.Outputs, protocol.OutputMemberLogits) {
		return protocol.InferResponse{}, cacheResult{}, fmt.Errorf("%w: output %q: %q is not an ensemble", protocol.ErrInvalidInput, protocol.OutputMemberLogits, m.Name())
	}
	if err := checkCascadeOutputs(m, req.Outputs); err != nil {
		return protocol.InferResponse{}, cacheResult{}, err
	}
	p, err := s.predictInputs(ctx, m, v, req.Texts, req.Pairs, useCache)
	if err != nil {
		return protocol.InferResponse{}, p.cache, err
	}
	id := req.ID
	if id == "" {
		id = uuid.NewString()
	}
	r := newRender(m, p.members)
	r.topK = req.TopK
	s.monitor.answered(m.Name(), r, p.logits, protocol.RequestID(ctx), id)
	resp := protocol.InferResponse{ModelName: m.Name(), ID: id, Outputs: r.v2Outputs(p.logits, req.Outputs)}
	cascadeV2Outputs(resp.Outputs, p)
	if p.cache.used || p.ensemble || p.cascade != nil || p.windows != nil {
		resp.Parameters = map[string]any{}
		if p.cache.used {
			resp.Parameters["cache_hits"] = p.cache.hits
		}
		if p.ensemble {
			v2EnsembleParameters(resp.Parameters, p)
		}
		if p.cascade != nil {
			cascadeV2Parameters(resp.Parameters, p)
		}
		if p.windows != nil {
			windowsV2Parameters(resp.Parameters, p.windows)
		}
	}
	resp.Parameters = s.truncationParameters(resp.Parameters, m.Name(), p)
	if v.Name != "" {
		resp.ModelVersion = &v.Name
	}
	return resp, p.cache, nil
}

// v2EnsembleParameters say which members answered, and which did not, as
// OIP scalars (a parameter may not be a list): a comma-joined list of
// names and its count. Model names cannot contain commas.
func v2EnsembleParameters(out map[string]any, p prediction) {
	used := make([]string, len(p.members))
	for i, m := range p.members {
		used[i] = m.Name
	}
	out["members_used"] = strings.Join(used, ",")
	out["members_used_count"] = len(used)
	if len(p.failed) > 0 {
		out["members_failed"] = strings.Join(p.failed, ",")
		out["members_failed_count"] = len(p.failed)
	}
}

// joinFloats is weights as one OIP scalar: "0.5,0.25".
func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return strings.Join(s, ",")
}
