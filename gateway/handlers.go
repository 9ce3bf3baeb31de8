package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gin-gonic/gin"

	"github.com/chorusml/chorus/protocol"
)

func (s *Server) v1List(c *gin.Context) {
	names := []string{}
	if r := s.models.Load(); r != nil {
		names = r.Names()
	}
	c.JSON(http.StatusOK, gin.H{"models": names})
}

// modelReady answers V1 GET /v1/models/{name} and V2 .../ready alike: both
// protocols use {"name": ..., "ready": true}.
func (s *Server) modelReady(c *gin.Context) {
	m, v, err := s.model(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	if c.Param("version") == "" {
		v = nil // any version will do
	}
	if !s.ready.Load() {
		s.abort(c, fmt.Errorf("%w: %q: the server is shutting down", protocol.ErrNotReady, m.Name()))
		return
	}
	if !m.Ready(v) {
		s.abort(c, fmt.Errorf("%w: %q: no replica is healthy", protocol.ErrNotReady, m.Name()))
		return
	}
	c.JSON(http.StatusOK, gin.H{"name": m.Name(), "ready": true})
}

func (s *Server) v1Predict(c *gin.Context) {
	name, verb, _ := strings.Cut(c.Param("name"), ":")
	if verb == "explain" {
		s.v1Explain(c, name)
		return
	}
	if verb != "predict" {
		s.abort(c, fmt.Errorf("%w POST %s (want /v1/models/{name}:predict)", errNoRoute, c.Request.URL.Path))
		return
	}
	c.Params = append(c.Params[:0:0], gin.Param{Key: "name", Value: name})
	m, v, err := s.model(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	_, span := s.tracer.Start(c.Request.Context(), "chorus.decode")
	body, err := s.readBody(c)
	var req protocol.V1Request
	if err == nil {
		req, err = protocol.DecodeV1(body)
	}
	if err == nil {
		err = s.checkInputs(req.Instances, req.Pairs)
	}
	endSpan(span, err)
	if err != nil {
		s.abort(c, err)
		return
	}
	ctx := refuseTruncation(s.requestContext(c), req.Truncate)
	p, err := s.predictInputs(ctx, m, v, req.Instances, req.Pairs, wantCache(c, req.Cache))
	if err != nil {
		s.abort(c, err)
		return
	}
	setCacheHeader(c, p.cache)
	r := newRender(m, p.members)
	r.topK = req.TopK
	s.monitor.answered(m.Name(), r, p.logits, requestID(c), "")
	resp := protocol.V1Response{Predictions: r.v1Predictions(p.logits, req.Output)}
	if p.ensemble {
		resp.Parameters = ensembleParameters(p)
		if req.Explain {
			resp.Members = r.v1Members()
		}
	}
	if p.cascade != nil {
		resp.Parameters = cascadeV1Parameters(p)
	}
	if p.windows != nil {
		resp.Parameters = map[string]any{"windows": p.windows}
	}
	resp.Parameters = s.truncationParameters(resp.Parameters, m.Name(), p)
	c.JSON(http.StatusOK, resp)
}

func (s *Server) v2ServerMetadata(c *gin.Context) {
	c.JSON(http.StatusOK, protocol.ServerMetadataResponse{Name: "chorus", Version: s.version, Extensions: []string{protocol.ExtensionBinaryData}})
}

func (s *Server) v2ServerReady(c *gin.Context) {
	if !s.Ready() {
		status := statusOf(protocol.ErrNotReady)
		setStatusHeaders(c, status)
		c.JSON(status, gin.H{"ready": false})
		return
	}
	c.JSON(http.StatusOK, gin.H{"ready": true})
}

func (s *Server) v2ModelMetadata(c *gin.Context) {
	m, _, err := s.model(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	meta, sc := m.Metadata(), m.Scoring()
	resp := protocol.ModelMetadataResponse{
		Name:     m.Name(),
		Versions: m.VersionNames(),
		Platform: meta.Platform,
		Inputs:   []protocol.TensorMetadata{{Name: "input-0", Datatype: protocol.DatatypeBYTES, Shape: []int64{-1}}},
		Outputs:  withCascadeOutputs(m, outputsMetadata(sc.Mode, len(meta.Labels), isEnsemble(m))),
		Parameters: map[string]any{"labels": meta.Labels, "fingerprint": meta.Fingerprint,
			"temperature": sc.Temperature, "activation": string(sc.Activation), "threshold": sc.Threshold},
	}
	if sc.Calibrator != nil {
		resp.Parameters["calibration"] = string(sc.Calibrator.Kind())
	}
	c.JSON(http.StatusOK, resp)
}

func (s *Server) v2Infer(c *gin.Context) {
	m, v, err := s.model(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	_, span := s.tracer.Start(c.Request.Context(), "chorus.decode")
	body, err := s.readBody(c)
	var req protocol.V2Request
	if err == nil {
		req, err = decodeV2HTTP(c, body)
	}
	if err == nil {
		err = s.checkInputs(req.Texts, req.Pairs)
	}
	endSpan(span, err)
	if err != nil {
		s.abort(c, err)
		return
	}
	resp, cr, err := s.inferV2(refuseTruncation(s.requestContext(c), req.Truncate), m, v, req, wantCache(c, req.Cache))
	if err != nil {
		s.abort(c, err)
		return
	}
	setCacheHeader(c, cr)
	s.writeV2(c, resp, req)
}

// requestContext carries the request id, and the Timing the backends fill
// when timing headers are on, to the backends.
func (s *Server) requestContext(c *gin.Context) context.Context {
	ctx := protocol.WithRequestID(c.Request.Context(), requestID(c))
	if t := timingOf(c); t != nil {
		ctx = protocol.WithTiming(ctx, t)
	}
	return ctx
}

// wantCache reads the request's opt-out: Cache-Control: no-cache, or
// parameters.cache false.
func wantCache(c *gin.Context, param *bool) bool {
	for _, v := range c.Request.Header.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			if d = strings.TrimSpace(strings.ToLower(d)); d == "no-cache" || d == "no-store" {
				return false
			}
		}
	}
	return param == nil || *param
}

func setCacheHeader(c *gin.Context, cr cacheResult) {
	if cr.used {
		c.Header("X-Chorus-Cache", cr.header())
	}
}

// isEnsemble reports whether m combines other models.
func isEnsemble(m Servable) bool {
	_, ok := m.(*Ensemble)
	return ok
}

// ensembleParameters say which members answered (and which did not).
func ensembleParameters(p prediction) map[string]any {
	used := make([]string, len(p.members))
	for i, m := range p.members {
		used[i] = m.Name
	}
	out := map[string]any{"members_used": used}
	if len(p.failed) > 0 {
		out["members_failed"] = p.failed
	}
	return out
}

// endSpan records err on span (if any) and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
