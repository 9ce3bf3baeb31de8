package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/chorusml/chorus/internal/telemetry"
	"github.com/chorusml/chorus/protocol"
	"github.com/chorusml/chorus/protocol/oippb"
)

// NewGRPCServer builds the Open Inference Protocol over gRPC
// (inference.GRPCInferenceService, as KServe and Triton serve it) and the
// standard gRPC health service, over the same registry, cache, API keys,
// in-flight bound, limits, metrics, traces and readiness as the HTTP
// routes. The caller serves it and, on shutdown, after SetReady(false),
// drains it with GracefulStop.
func (s *Server) NewGRPCServer() *grpc.Server {
	g := grpc.NewServer(
		// The body limit, as for HTTP: a larger message is refused before
		// it is read.
		grpc.MaxRecvMsgSize(int(min(s.limits.MaxBodyBytes, 1<<31-1))),
		grpc.ChainUnaryInterceptor(s.grpcUnary),
	)
	oippb.RegisterGRPCInferenceServiceServer(g, &grpcService{s: s})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	s.grpcHealth.Store(hs)
	s.setGRPCHealth()
	return g
}

// grpcServiceName is the OIP service's name, for the health service.
const grpcServiceName = "inference.GRPCInferenceService"

// setGRPCHealth mirrors readiness into the health service: SERVING for
// the server ("") and the OIP service while Ready, NOT_SERVING while
// loading and from the moment shutdown starts.
func (s *Server) setGRPCHealth() {
	hs := s.grpcHealth.Load()
	if hs == nil {
		return
	}
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if s.Ready() {
		st = healthpb.HealthCheckResponse_SERVING
	}
	hs.SetServingStatus("", st)
	hs.SetServingStatus(grpcServiceName, st)
}

type registryCtxKey struct{}

// modelRPC reports the OIP calls that name a model: they take API keys and
// an in-flight slot, as the HTTP model routes do. Liveness, readiness,
// server metadata and health stay open to probes.
func modelRPC(method string) bool {
	switch method {
	case oippb.GRPCInferenceService_ModelReady_FullMethodName, oippb.GRPCInferenceService_ModelMetadata_FullMethodName,
		oippb.GRPCInferenceService_ModelInfer_FullMethodName:
		return true
	}
	return false
}

// requestModel is the model a request names, if any.
func requestModel(req any) string {
	switch r := req.(type) {
	case interface{ GetModelName() string }:
		return r.GetModelName()
	case *oippb.ModelReadyRequest:
		return r.GetName()
	case *oippb.ModelMetadataRequest:
		return r.GetName()
	}
	return ""
}

// grpcUnary is, for every unary call, what the HTTP middleware chain does:
// request id, trace context, registry pinning, API keys, the in-flight
// bound, metrics, one access line, and errors turned into statuses by the
// one mapper.
func (s *Server) grpcUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	md, _ := metadata.FromIncomingContext(ctx)
	id := firstMD(md, "x-request-id")
	if id == "" || len(id) > 128 {
		id = uuid.NewString()
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-request-id", id)) // best effort: the call may have ended
	ctx = s.propagator.Extract(ctx, telemetry.MetadataCarrier(md))
	ctx, span := s.tracer.Start(ctx, info.FullMethod, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.method", info.FullMethod)))
	ctx = protocol.WithRequestID(ctx, id)
	model := requestModel(req)
	if s.metrics != nil {
		s.metrics.inflight.Inc()
	}
	r, release := s.pin()
	defer func() {
		release()
		code := status.Code(err)
		if err != nil {
			span.SetStatus(otelcodes.Error, err.Error())
		}
		span.End()
		if s.metrics != nil {
			s.metrics.inflight.Dec()
			label := ""
			if model != "" {
				label = "unknown"
				if r != nil {
					if _, e := r.Get(model); e == nil {
						label = model
					}
				}
			}
			s.metrics.requests.WithLabelValues(label, "grpc", info.FullMethod, code.String()).Inc()
			s.metrics.duration.WithLabelValues(label, "grpc", info.FullMethod).Observe(time.Since(start).Seconds())
		}
		attrs := []slog.Attr{slog.String(logKeyRequestID, id)}
		if sc := span.SpanContext(); sc.HasTraceID() {
			attrs = append(attrs, slog.String(logKeyTraceID, sc.TraceID().String()))
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "request", append(attrs, slog.String(logKeyMethod, "gRPC"),
			slog.String(logKeyPath, info.FullMethod), slog.String(logKeyStatus, code.String()),
			slog.Duration(logKeyDuration, time.Since(start)))...)
	}()
	ctx = context.WithValue(ctx, registryCtxKey{}, r)
	if modelRPC(info.FullMethod) {
		if s.auth != nil {
			i, err := s.auth.checkHeader(firstMD(md, "authorization"))
			if err == nil {
				err = s.auth.admit(i, model)
			}
			if err != nil {
				return nil, s.grpcError(ctx, err, model, id)
			}
		}
		done, err := s.admit()
		if err != nil {
			return nil, s.grpcError(ctx, err, model, id)
		}
		defer done()
	}
	resp, err = handler(ctx, req)
	if err != nil {
		if _, isStatus := status.FromError(err); !isStatus {
			err = s.grpcError(ctx, err, model, id)
		}
	}
	return resp, err
}

func firstMD(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// grpcService implements the OIP RPCs on a Server.
type grpcService struct {
	oippb.UnimplementedGRPCInferenceServiceServer
	s *Server
}

func (g *grpcService) ServerLive(context.Context, *oippb.ServerLiveRequest) (*oippb.ServerLiveResponse, error) {
	return &oippb.ServerLiveResponse{Live: true}, nil
}

func (g *grpcService) ServerReady(context.Context, *oippb.ServerReadyRequest) (*oippb.ServerReadyResponse, error) {
	return &oippb.ServerReadyResponse{Ready: g.s.Ready()}, nil
}

func (g *grpcService) ServerMetadata(context.Context, *oippb.ServerMetadataRequest) (*oippb.ServerMetadataResponse, error) {
	// Binary tensor data is an HTTP extension: gRPC has raw contents.
	return &oippb.ServerMetadataResponse{Name: "chorus", Version: g.s.version, Extensions: []string{}}, nil
}

func resolveCtx(ctx context.Context, name, version string) (Servable, *Version, error) {
	r, _ := ctx.Value(registryCtxKey{}).(*Registry)
	return resolve(r, name, version)
}

// ModelReady answers ready false (not an error) for a known model that
// cannot serve, as clients expect a boolean; an unknown model is NotFound.
func (g *grpcService) ModelReady(ctx context.Context, req *oippb.ModelReadyRequest) (*oippb.ModelReadyResponse, error) {
	m, v, err := resolveCtx(ctx, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	if req.GetVersion() == "" {
		v = nil // any version will do
	}
	return &oippb.ModelReadyResponse{Ready: g.s.ready.Load() && m.Ready(v)}, nil
}

func (g *grpcService) ModelMetadata(ctx context.Context, req *oippb.ModelMetadataRequest) (*oippb.ModelMetadataResponse, error) {
	m, _, err := resolveCtx(ctx, req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	meta := m.Metadata()
	resp := &oippb.ModelMetadataResponse{Name: m.Name(), Versions: m.VersionNames(), Platform: meta.Platform,
		Inputs: []*oippb.ModelMetadataResponse_TensorMetadata{{Name: "input-0", Datatype: protocol.DatatypeBYTES, Shape: []int64{-1}}}}
	for _, o := range withCascadeOutputs(m, outputsMetadata(m.Scoring().Mode, len(meta.Labels), isEnsemble(m))) {
		resp.Outputs = append(resp.Outputs, &oippb.ModelMetadataResponse_TensorMetadata{Name: o.Name, Datatype: o.Datatype, Shape: o.Shape})
	}
	return resp, nil
}

func (g *grpcService) ModelInfer(ctx context.Context, in *oippb.ModelInferRequest) (*oippb.ModelInferResponse, error) {
	m, v, err := resolveCtx(ctx, in.GetModelName(), in.GetModelVersion())
	if err != nil {
		return nil, err
	}
	_, span := g.s.tracer.Start(ctx, "chorus.decode")
	req, raw, err := decodeGRPCInfer(in)
	if err == nil {
		err = g.s.checkInputs(req.Texts, req.Pairs)
	}
	endSpan(span, err)
	if err != nil {
		return nil, err
	}
	useCache := req.Cache == nil || *req.Cache
	md, _ := metadata.FromIncomingContext(ctx)
	for _, cc := range md.Get("cache-control") {
		if strings.Contains(strings.ToLower(cc), "no-cache") || strings.Contains(strings.ToLower(cc), "no-store") {
			useCache = false
		}
	}
	resp, cr, err := g.s.inferV2(refuseTruncation(ctx, req.Truncate), m, v, req, useCache)
	if err != nil {
		return nil, err
	}
	if cr.used {
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-chorus-cache", cr.header()))
	}
	out, err := encodeGRPCInfer(resp, raw)
	if err != nil {
		return nil, fmt.Errorf("render response: %w", err)
	}
	return out, nil
}
